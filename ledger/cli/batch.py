"""`ledger apply FILE.jsonl`: a batch of commands, applied fast and idempotently."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import IO

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from ledger.cli.state import global_options, state
from ledger.importer import Importer, Summary, read_lines


@click.command("apply")
@click.argument("file", type=click.File("rb"))
@click.option(
    "--check",
    is_flag=True,
    help="Validate every line first, against the state the earlier lines leave; write "
    "nothing unless all pass.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Validate every line, against the state the earlier lines leave, and write nothing.",
)
@click.option("--stop-on-error", is_flag=True, help="Stop at the first rejected line.")
@click.option("--batch-size", default=1000, show_default=True, help="Lines per transaction.")
@global_options
def apply(
    file: IO[bytes], check: bool, dry_run: bool, stop_on_error: bool, batch_size: int
) -> None:
    """Apply FILE (or - for stdin): one JSON command a line, e.g.

    {"command": "grant_role", "user": "ann@x.org", "role": "admin", "command_id": "imp-7"}
    """
    s = state()
    importer = Importer(
        s.ledger, actor=s.who, reason=s.reason, as_user=s.as_user, batch_size=max(1, batch_size)
    )
    lines = read_lines(file)
    if check or dry_run:
        checked = importer.check(lines)
        if checked.rejected or dry_run:
            _report(checked, "checked" if dry_run else "rejected before writing anything")
            if checked.rejected:
                raise SystemExit(1)
            return
    with _progress(len(lines)) as advance:
        summary = importer.apply(lines, stop_on_error=stop_on_error, progress=advance)
    _report(summary, "applied")
    if summary.rejected:
        raise SystemExit(1)


class _progress:
    """A progress bar on a terminal (stderr), nothing otherwise."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.bar: Progress | None = None

    def __enter__(self) -> Callable[[int], None]:
        if sys.stderr.isatty() and not state().as_json:
            self.bar = Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self.bar.start()
            task = self.bar.add_task("applying", total=self.total)
            bar = self.bar
            return lambda done: bar.advance(task, done)
        return lambda done: None

    def __exit__(self, *args: object) -> None:
        if self.bar is not None:
            self.bar.stop()


def _report(summary: Summary, what: str) -> None:
    s = state()
    if s.as_json:
        s.emit(summary.as_json())
        return
    console = Console(markup=False)  # the lines' values are shown as they are
    if what == "applied":
        console.print(
            f"applied {summary.count('applied')}, unchanged {summary.count('unchanged')}, "
            f"rejected {len(summary.rejected)}",
            highlight=False,
        )
    else:
        console.print(
            f"{what}: {len(summary.results)} lines, {len(summary.rejected)} invalid",
            highlight=False,
        )
    for result in summary.rejected:
        console.print(
            f"  line {result.line}: {result.error_type}: {result.error}",
            highlight=False,
            soft_wrap=True,
        )
