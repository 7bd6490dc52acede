"""`ledger demo`: the main job — record a realistic history, project it, summarise it."""

from __future__ import annotations

import shutil
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from ledger.application import Ledger
from ledger.cli.state import global_options, state
from ledger.demo import describe, record_demo
from ledger.errors import LedgerError

DEMO_DIR = Path("ledger-demo")


@click.command()
@click.option("--seed", default=7, show_default=True, help="Seed of the simulated history.")
@global_options
def demo(seed: int) -> None:
    """Record a realistic platform history and print what it recorded.

    Without --db (or LEDGER_DATABASE_URL) it writes ./ledger-demo/ledger.db afresh; a database
    given explicitly must hold no events yet.
    """
    s = state()
    url = s.db_url
    if url is None:
        shutil.rmtree(DEMO_DIR, ignore_errors=True)
        DEMO_DIR.mkdir()
        url = f"sqlite:///{DEMO_DIR / 'ledger.db'}"
    else:
        _require_empty(url)
    history = record_demo(url, seed=seed)
    summary = describe(url, history)
    s.emit({"database": url, **summary}, lambda console: _print_summary(console, url, summary))


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
