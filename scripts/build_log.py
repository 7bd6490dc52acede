#!/usr/bin/env python3
"""Build a long event log for measuring (export memory, say), with the benchmark's own batch
lines: users, then logins and role changes of random users, run through `ledger apply`'s
importer in chunks. On a log that already holds events, it tops it up to --events with logins
of its first 1,000 users (aggregates the importer keeps cached: several times faster).

    python scripts/build_log.py --url sqlite:////tmp/log-1m.db --events 1000000
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench import batch_lines

CHUNK = 20_000  # lines a call to the importer


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True, help="an empty ledger database")
    parser.add_argument("--events", type=int, required=True, help="about how many events")
    arguments = parser.parse_args()
    from ledger import Ledger
    from ledger.importer import Importer

    led = Ledger(arguments.url)
    held = led.recorder.max_notification_id() or 0
    if held:
        lines = [
            json.dumps(
                {
                    "command": "record_login",
                    "user": f"user{n % 1000}@bench.example",
                    "command_id": f"top-up-{held}-{n}",
                }
            )
            for n in range(max(0, arguments.events - held))
        ]
    else:
        users = max(200, arguments.events // 10)  # a user is two events (created, joined)
        extra = max(0, arguments.events - 2 * users)
        lines = batch_lines(users, extra, 0, random.Random(42))
    importer = Importer(led, actor="bench", batch_size=2000)
    started = time.perf_counter()
    for first in range(0, len(lines), CHUNK):
        chunk = lines[first : first + CHUNK]
        summary = importer.apply([(first + n, text) for n, text in enumerate(chunk, 1)])
        if summary.rejected:
            raise SystemExit(f"rejected: {summary.rejected[:3]}")
        events = led.recorder.max_notification_id() or 0
        rate = events / (time.perf_counter() - started)
        print(f"{first + len(chunk):,} lines, {events:,} events, {rate:,.0f} events/s", flush=True)
    led.close()


if __name__ == "__main__":
    main()
