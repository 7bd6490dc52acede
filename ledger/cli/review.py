"""`ledger review start|items|certify|revoke|close|show|list`: access-review campaigns from the
shell. The writes run the registered commands (`@runs`); the reads ask the read models."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click
from rich.console import Console

from ledger.cli.reads import _table, at_option
from ledger.cli.state import INSTANT, State, global_options, require, state
from ledger.cli.writes import command_id_option, runs
from ledger.commands import reviews
from ledger.errors import NotFound, ValidationError
from ledger.validation import shown

_NEEDS_REASON = "--reason (a review decision needs one)"


@click.group()
def review() -> None:
    """Access-review campaigns: a reviewer certifies or revokes each grant held at the start."""


@runs(reviews.StartReview)
@review.command("start")
@click.argument("name")
@click.option("--account", "accounts", multiple=True, help="An account in scope (repeatable).")
@click.option("--role", "roles", multiple=True, help="A user role in scope (repeatable).")
@click.option("--reviewer", required=True, help="The user (id or email) who decides the items.")
@click.option("--due", type=INSTANT, required=True, help="When the review is due (future).")
@command_id_option
@global_options
def review_start(
    name: str,
    accounts: tuple[str, ...],
    roles: tuple[str, ...],
    reviewer: str,
    due: datetime,
    command_id: str | None,
) -> None:
    """Start campaign NAME over the grants held now by the users of the --account(s), or
    by the holders of the --role(s) (one kind, not both)."""
    if bool(accounts) == bool(roles):
        raise ValidationError("invalid scope: give --account (repeatable) or --role, not both")
    scope = {"accounts": list(accounts)} if accounts else {"roles": list(roles)}
    s = state()
    result = s.ledger.start_review(
        name,
        scope=scope,
        reviewer=reviewer,
        due=due,
        actor=s.who,
        reason=s.reason,
        command_id=command_id,
    )
    s.emit_result(result, f"review campaign {name!r} started")


@runs(reviews.Certify)
@review.command("certify")
@click.argument("item")
@click.option("--reviewer", required=True, help="The campaign's reviewer (id or email).")
@command_id_option
@global_options
def review_certify(item: str, reviewer: str, command_id: str | None) -> None:
    """Certify ITEM (as `ledger review items` lists it): its user keeps the role. Needs
    --reason."""
    s = state()
    result = s.ledger.certify(
        item,
        reviewer=reviewer,
        reason=require(s.reason, _NEEDS_REASON),
        actor=s.who,
        command_id=command_id,
    )
    s.emit_result(result, f"item {item} certified")


@runs(reviews.RevokeViaReview)
@review.command("revoke")
@click.argument("item")
@click.option("--reviewer", required=True, help="The campaign's reviewer (id or email).")
@command_id_option
@global_options
def review_revoke(item: str, reviewer: str, command_id: str | None) -> None:
    """Revoke ITEM: the decision and the role's revocation are recorded together. Needs
    --reason."""
    s = state()
    result = s.ledger.revoke_via_review(
        item,
        reviewer=reviewer,
        reason=require(s.reason, _NEEDS_REASON),
        actor=s.who,
        command_id=command_id,
    )
    s.emit_result(result, f"item {item} revoked")


@runs(reviews.CloseReview)
@review.command("close")
@click.argument("name")
@command_id_option
@global_options
def review_close(name: str, command_id: str | None) -> None:
    """Close campaign NAME, recording its outcome (certified, revoked, undecided, overdue)."""
    s = state()
    result = s.ledger.close_review(name, actor=s.who, reason=s.reason, command_id=command_id)
    s.emit_result(result, f"review campaign {name!r} closed")


ITEM_COLUMNS = ["id", "user", "email", "role", "decision", "decided_at", "reason"]


def item_rows(s: State, name: str, at: datetime | None) -> list[dict[str, Any]]:
    """The items of a campaign as the CLI and the report show them (the user by id, and
    by email as the read models hold it now)."""
    reads = s.reads
    rows = []
    for item in reads.review_items(name, at):
        user = reads.get_user(item.user_id)
        rows.append(
            {
                "id": item.id,
                "user": str(item.user_id),
                "email": None if user is None else user.email,
                "role": item.role,
                "account": str(item.account_id),
                "decision": item.decision,
                "decided_at": item.decided_at,
                "reviewer": None if item.reviewer_id is None else str(item.reviewer_id),
                "decided_by": item.decided_by,
                "reason": item.reason,
                "role_revoked": item.role_revoked,
            }
        )
    return rows


def _campaign(s: State, name: str, at: datetime | None) -> dict[str, Any]:
    found = s.reads.review(name, at)
    if found is None:
        when = "" if at is None else f" by {at.isoformat()}"
        raise NotFound(f"review campaign {shown(name)} not found (not started{when})")
    data: dict[str, Any] = found.model_dump(mode="json")
    return data


@review.command("items")
@click.argument("name")
@at_option
@global_options
def review_items(name: str, at: datetime | None) -> None:
    """The items of campaign NAME, each with its decision (as of --at)."""
    s = state()
    _campaign(s, name, at)
    rows = item_rows(s, name, at)
    s.emit(
        [{**row, "decided_at": _iso(row["decided_at"])} for row in rows],
        lambda console: console.print(_table(f"Review {name}", rows, ITEM_COLUMNS)),
    )


@review.command("show")
@click.argument("name")
@at_option
@global_options
def review_show(name: str, at: datetime | None) -> None:
    """Campaign NAME: reviewer, due time, status and counts, and its items (as of --at)."""
    s = state()
    campaign = _campaign(s, name, at)
    rows = item_rows(s, name, at)
    data = {**campaign, "item_list": [{**r, "decided_at": _iso(r["decided_at"])} for r in rows]}

    def human(console: Console) -> None:
        for key in ("name", "status", "reviewer_id", "due", "started_at", "closed_at"):
            console.print(f"{key}: {campaign[key] or '-'}", highlight=False)
        console.print(
            f"items: {campaign['items']} ({campaign['certified']} certified, "
            f"{campaign['revoked']} revoked, {campaign['undecided']} undecided)",
            highlight=False,
        )
        console.print(_table(f"Review {name}", rows, ITEM_COLUMNS))

    s.emit(data, human)


@review.command("list")
@at_option
@global_options
def review_list(at: datetime | None) -> None:
    """Every campaign started (by --at), with its status and counts."""
    s = state()
    rows = [found.model_dump(mode="json") for found in s.reads.reviews(at)]
    columns = ["name", "status", "due", "items", "certified", "revoked", "undecided"]
    s.emit(rows, lambda console: console.print(_table("Access reviews", rows, columns)))


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
