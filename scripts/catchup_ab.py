#!/usr/bin/env python3
"""Wall and CPU seconds of rebuilds of one log, for A/B runs of two trees in turn (on a quiet
machine).

    python scripts/catchup_ab.py build sqlite:////dev/shm/ab.db    # 13,190 events, as callgrind's
    PYTHONPATH=TREE python scripts/catchup_ab.py run sqlite:////dev/shm/ab.db [--rounds 5]

Prints each rebuild's wall seconds, the process's and the main thread's CPU seconds, and
voluntary context switches.
"""

from __future__ import annotations

import argparse
import gc
import random
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench import batch_lines


def build(url: str) -> None:
    from ledger import Ledger
    from ledger.importer import Importer

    led = Ledger(url)
    lines = batch_lines(1200, 10800, 2400, random.Random(42))
    summary = Importer(led, actor="bench", batch_size=2000).apply(list(enumerate(lines, 1)))
    assert not summary.rejected, summary.rejected[:3]
    print(f"{led.recorder.max_notification_id()} events")
    led.close()


def run(url: str, rounds: int) -> None:
    from projections import ReadModel
    from projections import projector as projector_module

    rm = ReadModel(url, page_size=2000)
    rows = []
    for _ in range(rounds):
        gc.collect()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw
        wall, cpu, main = time.perf_counter(), time.process_time(), time.thread_time()
        events = rm.rebuild()
        rows.append(
            (
                time.perf_counter() - wall,
                time.process_time() - cpu,
                time.thread_time() - main,
                resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw - before,
            )
        )
    rm.close()
    tree = Path(projector_module.__file__).parent.parent
    print(f"{tree}, {events} events")
    for row in rows:
        print("  wall {:.3f} s, CPU {:.3f} s, main thread {:.3f} s, {} switches".format(*row))
    print(f"  best wall {min(row[0] for row in rows):.3f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["build", "run"])
    parser.add_argument("url")
    parser.add_argument("--rounds", type=int, default=5)
    arguments = parser.parse_args()
    if arguments.command == "build":
        build(arguments.url)
    else:
        run(arguments.url, arguments.rounds)


if __name__ == "__main__":
    main()
