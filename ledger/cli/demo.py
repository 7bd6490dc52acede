"""`ledger demo`: the main job — record a realistic year, project it, verify it, summarise it."""

from __future__ import annotations

import os
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ledger.application import Ledger
from ledger.audit import TITLES, Audit
from ledger.cli.state import global_options, state
from ledger.demo import record_demo
from ledger.errors import LedgerError
from ledger.storage.settings import URL_VARIABLE

DEMO_DIR = Path("ledger-demo")
PRIVILEGED = ("admin", "admin-reader", "account-admin", "consultant")
DORMANT_DAYS = 90


@click.command()
@click.option("--seed", default=7, show_default=True, help="Seed of the simulated history.")
@global_options
def demo(seed: int) -> None:
    """Record a year of a consultancy and its clients, and summarise it.

    Without --db (or LEDGER_DATABASE_URL) it writes ./ledger-demo/ledger.db afresh; a database
    given explicitly must hold no events yet.
    """
    s = state()
    started = time.perf_counter()
    url = s.db_url or os.environ.get(URL_VARIABLE, "").strip() or None
    if url is None:
        shutil.rmtree(DEMO_DIR, ignore_errors=True)
        DEMO_DIR.mkdir()
        url = f"sqlite:///{DEMO_DIR / 'ledger.db'}"
        s.db_url = url
    else:
        s.db_url = url
        _require_empty(url)
    history = record_demo(url, seed=seed)
    projected = s.read_model.catch_up()
    summary = _summary(s.read_model, history.end, projected)
    summary["database"] = url
    with Audit(url) as auditor:
        verified = auditor.verify()
        if not verified.ok:
            raise LedgerError(f"the demo's integrity chain does not verify: {verified.summary()}")
        summary["integrity"] = verified.summary()
        summary["reports"] = _write_reports(auditor, history.end)
    summary["seconds"] = round(time.perf_counter() - started, 1)
    s.emit(summary, lambda console: _print(console, summary))


def _write_reports(auditor: Audit, now: datetime) -> dict[str, str]:
    folder = DEMO_DIR / "reports"
    folder.mkdir(parents=True, exist_ok=True)
    since = (now - timedelta(days=365)).isoformat()
    written = {}
    for name in TITLES:
        path = folder / f"{name}.csv"
        path.write_text(
            auditor.render([name], "csv", at=now, since=since, until=now), encoding="utf-8"
        )
        written[name] = str(path)
    page = folder / "audit-report.html"
    page.write_text(
        auditor.render(list(TITLES), "html", at=now, since=since, until=now), encoding="utf-8"
    )
    written["html"] = str(page)
    return written


def _require_empty(url: str) -> None:
    led = Ledger(url)
    try:
        if led.recorder.max_notification_id():
            raise LedgerError(f"refusing to write the demo into {url}: it already holds events")
    finally:
        led.close()


def _summary(rm: Any, now: datetime, projected: int) -> dict[str, Any]:
    half_year_ago = now - timedelta(days=182)
    users = rm.list_users(include_inactive=True)
    accounts = rm.list_accounts(include_closed=True)
    names = {a.id: a.name for a in accounts}
    dormant_since = now - timedelta(days=DORMANT_DAYS)
    return {
        "events": projected,
        "period": {"from": (now - timedelta(days=365)).isoformat(), "to": now.isoformat()},
        "accounts": [
            {
                "name": a.name,
                "consultancy": names.get(a.consultancy_account_id),
                "roles": a.account_roles,
                "active_users": sum(1 for u in users if u.account_id == a.id and u.active),
                "users": sum(1 for u in users if u.account_id == a.id),
                "closed": a.closed,
            }
            for a in accounts
        ],
        "privileged": {
            role: {
                "now": sorted(u.email for u in rm.users_with_role(role)),
                "six_months_ago": sorted(
                    u.email for u in rm.users_with_role(role, at=half_year_ago)
                ),
            }
            for role in PRIVILEGED
        },
        "dormant": [
            {"email": u.email, "account": names[u.account_id], "last_login_at": u.last_login_at}
            for u in users
            if u.active and (u.last_login_at or u.created_at) < dormant_since
        ],
        "leavers": [
            {"email": u.email, "account": names[u.account_id]} for u in users if not u.active
        ],
        "governance": _governance(rm, users),
    }


def _governance(rm: Any, users: list[Any]) -> dict[str, Any]:
    """The separation-of-duties exceptions approved, the time-limited grants that ended by
    themselves, and the access-review campaigns."""
    emails = {str(u.id): u.email for u in users}
    log = rm.audit_log()
    approved = log[log["event"] == "SodExceptionApproved"]
    expired = log[log["event"] == "RoleExpired"]
    return {
        "sod_exceptions": [
            {
                "user": emails.get(str(row["aggregate_id"])),
                "role": row["role"],
                "rule": row["rule"],
                "approved_by": row["approved_by"],
                "reason": row["reason"],
            }
            for _, row in approved.iterrows()
        ],
        "expired_grants": [
            {"user": emails.get(str(row["aggregate_id"])), "role": row["role"], "at": row["at"]}
            for _, row in expired.iterrows()
        ],
        "reviews": [
            {
                "name": found.name,
                "status": found.status,
                "reviewer": emails.get(str(found.reviewer_id)),
                "due": found.due,
                "items": found.items,
                "certified": found.certified,
                "revoked": found.revoked,
                "undecided": found.undecided,
                "overdue": found.overdue,
            }
            for found in rm.reviews()
        ],
    }


def _print(console: Console, summary: dict[str, Any]) -> None:
    console.print(
        Text.assemble(
            ("Account Ledger demo", "bold"),
            f": {summary['events']} events from {summary['period']['from'][:10]} to "
            f"{summary['period']['to'][:10]}, recorded into {summary['database']} and "
            f"projected in {summary['seconds']} s.",
        ),
        highlight=False,
    )
    accounts = Table(title="Accounts")
    for column in ("account", "consultancy", "active / users", "account roles", "status"):
        accounts.add_column(column)
    for a in summary["accounts"]:
        accounts.add_row(
            a["name"],
            a["consultancy"] or "-",
            f"{a['active_users']} / {a['users']}",
            ", ".join(a["roles"]) or "-",
            "closed" if a["closed"] else "open",
        )
    privileged = Table(title="Privileged roles: effective holders")
    for column in ("role", "now", "six months ago"):
        privileged.add_column(column)
    for role, holders in summary["privileged"].items():
        privileged.add_row(
            role, "\n".join(holders["now"]) or "-", "\n".join(holders["six_months_ago"]) or "-"
        )
    dormant = Table(title=f"Dormant users (active, no login for {DORMANT_DAYS} days)")
    for column in ("email", "account", "last login"):
        dormant.add_column(column)
    for u in summary["dormant"]:
        last = u["last_login_at"]
        dormant.add_row(u["email"], u["account"], last.strftime("%Y-%m-%d") if last else "never")
    console.print(accounts, privileged, dormant)
    console.print(f"Leavers (deactivated): {len(summary['leavers'])}.", highlight=False)
    governance = summary["governance"]
    for exception in governance["sod_exceptions"]:
        console.print(
            f"SoD exception: {exception['role']} for {exception['user']} under rule "
            f"{exception['rule']}, approved by {exception['approved_by']} ({exception['reason']}).",
            highlight=False,
        )
    for grant in governance["expired_grants"]:
        console.print(
            f"Time-limited grant ended: {grant['role']} of {grant['user']} at "
            f"{str(grant['at'])[:16]}.",
            highlight=False,
        )
    for found in governance["reviews"]:
        console.print(
            f"Access review {found['name']} ({found['status']}, reviewer {found['reviewer']}): "
            f"{found['items']} items, {found['certified']} certified, {found['revoked']} "
            f"revoked, {found['undecided']} undecided.",
            highlight=False,
        )
    console.print(f"Integrity chain: {summary['integrity']}", highlight=False)
    reports = Path(summary["reports"]["html"]).parent
    console.print(
        f"Reports: {reports}/ (CSV per report, audit-report.html with a timeline)", highlight=False
    )
    since = (datetime.now(UTC) - timedelta(days=182)).date()
    console.print(
        f"Try: ledger --db {summary['database']} query holders admin --at {since}",
        highlight=False,
    )
