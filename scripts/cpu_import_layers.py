"""CPU of `ledger apply` per layer, inclusive, without a profiler's overhead per call: each
layer's entry point is wrapped with a CPU clock, the import run on the benchmark's lines.

    python scripts/cpu_import_layers.py --users 5000 --extra 45000 --annotations 10000 DIR

DIR (a tmpfs such as /dev/shm keeps fsync out of it) receives a scratch SQLite database.
Nested layers are shown indented under the layer that calls them (their time is in its time).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import bench

_spent: defaultdict[str, int] = defaultdict(int)


def _timed(layer: str, function: Callable[..., Any]) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.process_time_ns()
        try:
            return function(*args, **kwargs)
        finally:
            _spent[layer] += time.process_time_ns() - start

    return timed


def _wrap_layers() -> None:
    from ledger.commands import registry
    from ledger.commands.base import Command
    from ledger.importer import Importer
    from ledger.runner import Runner
    from ledger.storage.command_log import CommandLog
    from ledger.storage.personal_data import PersonalDataMapper
    from ledger.storage.recorders import LedgerPostgresRecorder, LedgerSQLiteRecorder

    wrapped: list[tuple[Any, str, str]] = [
        (Importer, "parse", "line: JSON and argument names"),
        (Importer, "_prefetch", "batch look-ups: command ids, claims, preload"),
        (Importer, "run", "per line, after its parse"),
        (Importer, "resolve", "  references by email / name"),
        (Runner, "run", "  runner: idempotency, fingerprint, bookkeeping, handler"),
        (CommandLog, "fingerprint", "    fingerprint"),
        (Runner, "commit", "save: the batch's events and side rows"),
        (PersonalDataMapper, "to_stored_event", "  mapper: encode and seal"),
        (LedgerSQLiteRecorder, "insert_events", "  recorder: write and commit"),
        (LedgerPostgresRecorder, "insert_events", "  recorder: write and commit"),
    ]
    for owner, name, layer in wrapped:
        setattr(owner, name, _timed(layer, getattr(owner, name)))
    parse = Command.parse.__func__  # type: ignore[attr-defined]
    Command.parse = classmethod(  # type: ignore[method-assign, assignment]
        _timed("  command: parse and validate", parse)
    )
    for entry in registry.COMMANDS.values():
        handler = _timed("    handler: checks, domain, aggregates", entry.handler)
        object.__setattr__(entry, "handler", handler)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("directory")
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--extra", type=int, default=45000)
    parser.add_argument("--annotations", type=int, default=10000)
    args = parser.parse_args()

    from ledger import Ledger
    from ledger.importer import Importer

    _wrap_layers()
    with tempfile.TemporaryDirectory(dir=args.directory) as scratch:
        led = Ledger(f"sqlite:///{scratch}/layers.db")
        lines = bench.batch_lines(args.users, args.extra, args.annotations, random.Random(42))
        importer = Importer(led, actor="bench", batch_size=2000)
        start = time.process_time_ns()
        summary = importer.apply(list(enumerate(lines, 1)))
        total = time.process_time_ns() - start
        assert not summary.rejected, summary.rejected[:3]
        events = led.recorder.max_notification_id() or 0
        led.close()
    print(
        f"{len(lines):,} lines, {events:,} events: CPU {total / 1e9:.2f} s, "
        f"{total / 1e3 / len(lines):.0f} us a line"
    )
    order = [
        "line: JSON and argument names",
        "batch look-ups: command ids, claims, preload",
        "per line, after its parse",
        "  references by email / name",
        "  command: parse and validate",
        "  runner: idempotency, fingerprint, bookkeeping, handler",
        "    fingerprint",
        "    handler: checks, domain, aggregates",
        "save: the batch's events and side rows",
        "  mapper: encode and seal",
        "  recorder: write and commit",
    ]
    for layer in order:
        print(f"{layer:58} {_spent[layer] / 1e9:7.2f} s {_spent[layer] / total:6.1%}")


if __name__ == "__main__":
    main()
