"""The import rows of `bench.py` alone (the plain library's save, `ledger apply` on the
benchmark's lines, and the import without the database writes), for a run short enough to
hold the shared bench lock briefly:

    python scripts/import_floor.py [--scale small] [--url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="PostgreSQL server (a scratch database is made on it).")
    parser.add_argument("--scale", choices=sorted(bench.SCALES), default="small")
    args = parser.parse_args()
    scale = bench.SCALES[args.scale]

    from ledger import Ledger
    from ledger.importer import Importer

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    with bench.scratch_database(args.url) as url:
        raw = bench.Raw(url)
        raw.settle()
        plain_save, _ = bench.plain_library(url, max(20_000, scale["users"]))
        led = Ledger(url)
        lines = bench.batch_lines(
            scale["users"], scale["extra"], scale["annotations"], random.Random(42)
        )
        importer = Importer(led, actor="bench", batch_size=2000)
        raw.settle()
        start = time.perf_counter()
        summary = importer.apply(list(enumerate(lines, 1)))
        elapsed = time.perf_counter() - start
        assert not summary.rejected, summary.rejected[:3]
        events = led.recorder.max_notification_id() or 0
        results = [
            bench.ratio_result(
                "batch import (ledger apply)",
                events / elapsed,
                "events/s",
                plain_save,
                "plain eventsourcing save, events/s",
                0.35,
                f"{len(lines):,} lines, {events:,} events",
            ),
            bench.import_without_writes(url, lines, log),
        ]
        led.close()
        raw.close()
    backend = "SQLite" if args.url is None else "PostgreSQL"
    bench.show(results, f"{backend}, --scale {args.scale}, import rows")


if __name__ == "__main__":
    main()
