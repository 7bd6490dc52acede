"""`ledger flexmeasures import|follow|status --from URL`: mirror a FlexMeasures database (only
ever read) into the ledger; see `ledger.flexmeasures`."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from eventsourcing.persistence import IntegrityError, OperationalError

from ledger.cli.state import global_options, printable, state
from ledger.flexmeasures.mirror import Mirror, SyncReport
from ledger.runner import is_contention
from ledger.validation import now

_FROM = click.option(
    "--from",
    "source_url",
    required=True,
    metavar="URL",
    help="The FlexMeasures database, postgresql://user@host/db (only ever read).",
)


@click.group("flexmeasures")
def flexmeasures() -> None:
    """Mirror a FlexMeasures database: its users, accounts, roles and annotations."""


@contextmanager
def _mirror(source_url: str) -> Iterator[Mirror]:
    mirror = Mirror(state().url, source_url)
    try:
        yield mirror
    finally:
        mirror.close()


def _summary(report: SyncReport) -> dict[str, Any]:
    return {
        "audit_rows_read": report.rows,
        "changes_recorded": report.recorded,
        "unrecognised_rows": report.unrecognised,
        "problems": report.problems,
    }


def _emit_sync(report: SyncReport, elapsed: float) -> None:
    s = state()
    for problem in report.problems:
        s.warn(problem)
    summary = {**_summary(report), "seconds": round(elapsed, 3)}
    s.emit(
        summary,
        f"{report.rows} audit_log row(s) read, {report.recorded} change(s) recorded, "
        f"{report.unrecognised} unrecognised row(s) kept, {len(report.problems)} problem(s)",
    )


@flexmeasures.command("import")
@_FROM
@global_options
def flexmeasures_import(source_url: str) -> None:
    """Record the FlexMeasures database's history and current state (again: only what
    changed since)."""
    with _mirror(source_url) as mirror:
        started = time.monotonic()
        report = mirror.sync()
        _emit_sync(report, time.monotonic() - started)


@flexmeasures.command("follow")
@_FROM
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1, max=86_400),
    default=5.0,
    show_default=True,
    help="Seconds between polls.",
)
@click.option("--polls", type=click.IntRange(min=1), help="Stop after this many polls.")
@global_options
def flexmeasures_follow(source_url: str, interval: float, polls: int | None) -> None:
    """Keep following the FlexMeasures database: each poll records what changed."""
    s = state()
    stop = threading.Event()
    done = 0
    with _mirror(source_url) as mirror:
        try:
            while not stop.is_set():
                try:
                    report = mirror.sync()
                except (IntegrityError, OperationalError) as error:
                    if not is_contention(error):
                        raise
                    s.warn("another writer got in the way of this poll: trying again")
                    stop.wait(interval)
                    continue
                if report.rows or report.recorded or report.problems:
                    for problem in report.problems:
                        s.warn(problem)
                    s.emit(
                        {"at": now().isoformat(), **_summary(report)},
                        f"{now().isoformat()}: {report.rows} audit_log row(s), "
                        f"{report.recorded} change(s) recorded",
                    )
                done += 1
                if polls is not None and done >= polls:
                    break
                stop.wait(interval)
        except KeyboardInterrupt:
            pass


def _deleted(kind: str, counts: dict[str, int]) -> str:
    """The stand-ins of what FlexMeasures deleted, counted apart from what it holds."""
    gone = counts.get("deleted_in_flexmeasures", 0)
    if not gone:
        return ""
    done = "erased" if kind == "users" else "closed"
    return f" (+{gone} deleted in FlexMeasures, {done} here)"


@flexmeasures.command("status")
@_FROM
@global_options
def flexmeasures_status(source_url: str) -> None:
    """How much of the FlexMeasures database is mirrored: one line per kind, the cursor, the
    last poll, the users the ledger could not take and the audit_log rows it could not
    interpret."""
    s = state()
    s.require_ledger()
    with _mirror(source_url) as mirror:
        status = mirror.status()
    lines = [
        f"{kind}: {counts['mirrored']} mirrored{_deleted(kind, counts)}, "
        f"{counts['in_flexmeasures']} in FlexMeasures"
        for kind, counts in status["kinds"].items()
    ]
    cursor = status["cursor"]
    if cursor is None:
        lines.append("cursor: none (never imported)")
    else:
        lines.append(
            f"cursor: audit_log row {cursor['last_audit_log_id']} of "
            f"{status['last_audit_log_id']}; last sync {cursor['synced_at']}"
        )
        lines.append(f"last poll: {cursor['polled_at']}")
    not_mirrored = status["users_not_mirrored"]
    lines.append(
        "FlexMeasures users not mirrored: "
        + (", ".join(str(user_id) for user_id in not_mirrored) or "none")
    )
    unrecognised = status["unrecognised"]
    lines.append(f"unrecognised audit_log rows: {len(unrecognised)}")
    lines.extend(f"  row {row['id']}: {printable(row['event'])}" for row in unrecognised)
    s.emit(status, "\n".join(lines))


COMMANDS = [flexmeasures]
