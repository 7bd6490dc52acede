"""`ledger query ...`, `ledger project` and `ledger rebuild`: the read side from the shell."""

from __future__ import annotations

import os
import signal
import threading
from datetime import datetime
from typing import Any
from uuid import UUID

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ledger.cli.state import INSTANT, State, global_options, state
from ledger.errors import LedgerError, NotFound
from ledger.storage.settings import URL_VARIABLE
from ledger.validation import shown
from projections.queries import NOBODY

at_option = click.option(
    "--at", type=INSTANT, help="Answer as of this instant (a date or a time; see --tz)."
)


def _user(s: State, reference: str) -> UUID:
    user_id: UUID = s.reads.resolve_user(reference)
    if user_id == NOBODY:
        raise NotFound(f"user {shown(reference)} not found")
    return user_id


def _account(s: State, reference: str) -> UUID:
    account_id: UUID | None = s.reads.resolve_account(reference)
    if account_id is None:
        raise NotFound(f"account {shown(reference)} not found")
    return account_id


def _table(title: str, rows: list[dict[str, Any]], columns: list[str]) -> Table:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*[_cell(row.get(column)) for column in columns])
    return table


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list | set | tuple):
        return ", ".join(sorted(str(v) for v in value)) or "-"
    if hasattr(value, "isoformat"):
        return str(value.isoformat(timespec="seconds"))
    return str(value)


@click.group()
def query() -> None:
    """Ask the read models (caught up first)."""


@query.command("has-role")
@click.argument("user_ref", metavar="USER")
@click.argument("role_name", metavar="ROLE")
@at_option
@global_options
def query_has_role(user_ref: str, role_name: str, at: datetime | None) -> None:
    """Whether USER effectively holds ROLE (an inactive user holds none)."""
    s = state()
    answer = s.reads.has_role(_user(s, user_ref), role_name, at=at)
    s.emit({"has_role": answer}, "yes" if answer else "no")


@query.command("roles")
@click.argument("user_ref", metavar="USER")
@at_option
@click.option("--held", is_flag=True, help="Roles held, even while inactive.")
@global_options
def query_roles(user_ref: str, at: datetime | None, held: bool) -> None:
    """The roles of USER."""
    s = state()
    roles = sorted(s.reads.roles(_user(s, user_ref), at=at, effective=not held))
    s.emit({"roles": roles}, "\n".join(roles) or "(none)")


@query.command("holders")
@click.argument("role_name", metavar="ROLE")
@at_option
@global_options
def query_holders(role_name: str, at: datetime | None) -> None:
    """The users who effectively hold ROLE."""
    s = state()
    users = [u.model_dump(mode="json") for u in s.reads.users_with_role(role_name, at=at)]
    s.emit(
        users,
        lambda c: c.print(
            _table(
                f"Holders of {role_name!r}",
                users,
                ["email", "account_id", "active", "last_login_at"],
            )
        ),
    )


@query.command("user")
@click.argument("user_ref", metavar="USER")
@global_options
def query_user(user_ref: str) -> None:
    """One user."""
    s = state()
    found = s.reads.get_user(_user(s, user_ref))
    if found is None:
        raise NotFound(f"user {shown(user_ref)} not found")
    data = found.model_dump(mode="json")
    s.emit(data, lambda c: _record(c, data))


@query.command("account")
@click.argument("account_ref", metavar="ACCOUNT")
@global_options
def query_account(account_ref: str) -> None:
    """One account."""
    s = state()
    found = s.reads.get_account(_account(s, account_ref))
    if found is None:
        raise NotFound(f"account {shown(account_ref)} not found")
    data = found.model_dump(mode="json")
    s.emit(data, lambda c: _record(c, data))


def _record(console: Console, data: dict[str, Any]) -> None:
    for key, value in data.items():
        console.print(Text.assemble((key, "bold"), f": {_cell(value)}"), highlight=False)


@query.command("users")
@click.option("--account", "account_ref", help="Only this account's users (id or name).")
@click.option("--include-inactive", is_flag=True)
@global_options
def query_users(account_ref: str | None, include_inactive: bool) -> None:
    """Users, active ones unless --include-inactive."""
    s = state()
    account_id = _account(s, account_ref) if account_ref else None
    users = [
        u.model_dump(mode="json")
        for u in s.reads.list_users(account_id, include_inactive=include_inactive)
    ]
    s.emit(
        users,
        lambda c: c.print(
            _table(
                "Users",
                users,
                ["email", "username", "account_id", "active", "roles", "last_login_at"],
            )
        ),
    )


@query.command("accounts")
@click.option("--include-closed", is_flag=True)
@global_options
def query_accounts(include_closed: bool) -> None:
    """Accounts, open ones unless --include-closed."""
    s = state()
    accounts = [
        a.model_dump(mode="json") for a in s.reads.list_accounts(include_closed=include_closed)
    ]
    s.emit(
        accounts,
        lambda c: c.print(
            _table(
                "Accounts",
                accounts,
                ["name", "id", "account_roles", "consultancy_account_id", "closed"],
            )
        ),
    )


@query.command("annotations")
@click.argument("account_ref", metavar="ACCOUNT")
@click.option("--after", type=INSTANT, help="Only annotations ending after this instant.")
@click.option("--before", type=INSTANT, help="Only annotations starting before this instant.")
@click.option(
    "--beliefs-after",
    type=INSTANT,
    help="Only annotations believed after this instant (belief time > it); those without a "
    "belief time pass.",
)
@click.option(
    "--beliefs-before",
    type=INSTANT,
    help="Only annotations believed by this instant (belief time <= it); those without a "
    "belief time pass.",
)
@click.option(
    "--source",
    "sources",
    multiple=True,
    help="Only annotations from this source: a source name or a user id (repeatable; a source "
    "that matches nothing gives nothing).",
)
@global_options
def query_annotations(
    account_ref: str,
    after: datetime | None,
    before: datetime | None,
    beliefs_after: datetime | None,
    beliefs_before: datetime | None,
    sources: tuple[str, ...],
) -> None:
    """The annotations of ACCOUNT (removed ones left out).

    --after/--before filter on the annotated period; --beliefs-after/--beliefs-before on when
    it was believed (the annotation's belief time). Instants are dates or times (see --tz).
    """
    s = state()
    found = s.reads.search_annotations(
        _account(s, account_ref),
        annotations_after=after,
        annotations_before=before,
        beliefs_after=beliefs_after,
        beliefs_before=beliefs_before,
        source=list(sources) if sources else None,
    )
    rows = [a.model_dump(mode="json") for a in found]
    s.emit(
        rows,
        lambda c: c.print(
            _table("Annotations", rows, ["start", "end", "type", "source", "content", "id"])
        ),
    )


@query.command("audit-log")
@click.argument("aggregate", required=False)
@click.option("--account", "account_ref", help="An account's events and its users' (id/name).")
@click.option("--since", type=INSTANT, help="From this instant (inclusive).")
@click.option("--until", type=INSTANT, help="Up to this instant (exclusive).")
@global_options
def query_audit_log(
    aggregate: str | None,
    account_ref: str | None,
    since: datetime | None,
    until: datetime | None,
) -> None:
    """Every event, oldest first; of one user or account (AGGREGATE: id, email or name)."""
    s = state()
    aggregate_id = None
    if aggregate:
        try:
            aggregate_id = _user(s, aggregate)
        except NotFound:
            aggregate_id = _account(s, aggregate)
    frame = s.reads.audit_log(
        aggregate_id,
        account_id=_account(s, account_ref) if account_ref else None,
        since=since,
        until=until,
    )
    rows = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    s.emit(
        rows,
        lambda c: c.print(
            _table(
                "Audit log",
                rows,
                ["position", "timestamp", "aggregate_type", "event", "actor", "reason"],
            )
        ),
    )


@click.command()
@click.option("--follow", is_flag=True, help="Keep projecting new events until interrupted.")
@global_options
def project(follow: bool) -> None:
    """Bring the read models up to date with the event log; with --follow, keep doing so and
    record the expiry of grants whose end has passed (as `ledger expire`) on each poll."""
    s = state()
    count = s.read_model.catch_up()
    if not follow:
        s.emit({"projected": count}, f"projected {count} events")
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    s.emit(
        {"projected": count, "following": True},
        f"projected {count} events; following (Ctrl-C to stop)",
    )

    warned = [""]  # the same failure at every poll is said once, until it changes

    def expire_ended_grants() -> None:
        if s.ledger.read_only:
            if not warned[0]:
                warned[0] = "read-only"
                s.warn(
                    "the ledger is read-only here: ended grants are not recorded as expired "
                    "(queries treat them as ended at their end all the same)"
                )
            return
        try:
            s.ledger.expire_grants(actor=s.who, reason="grant ended (ledger project --follow)")
        except LedgerError as error:  # contention that outlasted the retries: next poll
            if str(error) != warned[0]:
                warned[0] = str(error)
                s.warn(f"expiring ended grants: {error}")
        else:
            warned[0] = ""

    try:
        s.read_model.follow(stop, on_poll=expire_ended_grants)
    except KeyboardInterrupt:
        stop.set()


@click.command()
@global_options
def rebuild() -> None:
    """Drop the read models and project the whole event log again."""
    s = state()
    count = s.read_model.rebuild()
    s.emit({"projected": count}, f"rebuilt the read models from {count} events")


COMMANDS = [query, project, rebuild]


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Server processes (uvicorn's workers); each counts failed logins on its own.",
)
@global_options
def serve(host: str, port: int, workers: int) -> None:
    """Serve the read API (FlexMeasures v3_0 routes; OpenAPI at /docs)."""
    import uvicorn

    from projections.api import create_app
    from projections.api.server import NoDelayH11Protocol

    s = state()
    s.require_ledger()
    # X-Forwarded-For only from the proxies named in FORWARDED_ALLOW_IPS: uvicorn would trust
    # it from any local client, which could then pick its own address for the login throttle
    trusted_proxies = os.environ.get("FORWARDED_ALLOW_IPS", "").strip()
    app = create_app(s.url)  # an invalid setting stops the start here, in one line
    options: dict[str, Any] = dict(
        host=host,
        port=port,
        log_level="info",
        proxy_headers=bool(trusted_proxies),
        forwarded_allow_ips=trusted_proxies or None,
        http=NoDelayH11Protocol,
    )
    if workers == 1:
        uvicorn.run(app, **options)
        return
    # uvicorn starts each worker process from an import string; the URL goes in the environment
    os.environ[URL_VARIABLE] = s.url
    # a worker that has not answered the supervisor's ping within the timeout is killed and
    # replaced: uvicorn's 5 s default killed every worker still importing the app on a busy
    # machine (load 9 on 2 cores), over and over
    uvicorn.run(
        "projections.api:create_app",
        factory=True,
        workers=workers,
        timeout_worker_healthcheck=60,
        **options,
    )


COMMANDS.append(serve)
