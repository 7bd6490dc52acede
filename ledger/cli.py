"""The `ledger` command line. User mistakes print one line and exit 1; usage errors exit 2."""

from __future__ import annotations

import shutil
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from ledger.application import Ledger
from ledger.demo import describe, record_demo
from ledger.errors import LedgerError
from ledger.storage.settings import URL_VARIABLE

DEMO_DIR = Path("ledger-demo")


@click.group()
@click.option(
    "--db",
    "db_url",
    envvar=URL_VARIABLE,
    default=None,
    help=f"SQLAlchemy URL of the ledger database (else ${URL_VARIABLE}).",
)
@click.pass_context
def main(ctx: click.Context, db_url: str | None) -> None:
    """Account Ledger: an event-sourced ledger of accounts, users and roles."""
    ctx.obj = {"db_url": db_url}


@main.command()
@click.option("--seed", default=7, show_default=True, help="Seed of the simulated history.")
@click.pass_context
def demo(ctx: click.Context, seed: int) -> None:
    """Record a realistic platform history and print what it recorded.

    Without --db (or LEDGER_DATABASE_URL) it writes ./ledger-demo/ledger.db afresh; a database
    given explicitly must hold no events yet.
    """
    console = Console()
    url = ctx.obj["db_url"]
    try:
        if url is None:
            shutil.rmtree(DEMO_DIR, ignore_errors=True)
            DEMO_DIR.mkdir()
            url = f"sqlite:///{DEMO_DIR / 'ledger.db'}"
        else:
            _require_empty(url)
        history = record_demo(url, seed=seed)
        summary = describe(url, history)
    except LedgerError as error:
        raise click.ClickException(str(error)) from None
    _print_summary(console, url, summary)


def _require_empty(url: str) -> None:
    led = Ledger(url)
    try:
        if led.recorder.max_notification_id():
            raise LedgerError(f"refusing to write the demo into {url}: it already holds events")
    finally:
        led.close()


def _print_summary(console: Console, url: str, summary: dict[str, object]) -> None:
    accounts = Table(title="Accounts")
    for column in ("account", "users", "account roles"):
        accounts.add_column(column)
    for row in summary["accounts"]:  # type: ignore[attr-defined]
        accounts.add_row(row["name"], str(row["users"]), ", ".join(row["roles"]))
    users = Table(title="Users")
    for column in ("email", "account", "roles", "active", "logins", "last login (UTC)"):
        users.add_column(column)
    for row in summary["users"]:  # type: ignore[attr-defined]
        last = row["last_login_at"]
        users.add_row(
            row["email"],
            row["account"],
            ", ".join(row["roles"]) or "-",
            "yes" if row["active"] else "no",
            str(row["logins"]),
            last.strftime("%Y-%m-%d %H:%M") if last else "-",
        )
    events = Table(title="Recorded events")
    events.add_column("event")
    events.add_column("count", justify="right")
    for name, count in sorted(summary["events"].items()):  # type: ignore[attr-defined]
        events.add_row(name, str(count))
    console.print(accounts, users, events)
    console.print(f"Recorded into [bold]{url}[/bold]")
