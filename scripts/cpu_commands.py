"""CPU seconds of `ledger apply` on the benchmark's lines and per single command, for comparing
two trees of the code on a loaded machine (CPU time moves less with the load than wall time).

    python scripts/cpu_commands.py --users 2000 --extra 18000 --annotations 4000 DIR
    PYTHONPATH=/path/to/other/tree python scripts/cpu_commands.py ... DIR

DIR (a tmpfs such as /dev/shm keeps fsync out of it) receives a scratch SQLite database.
"""

from __future__ import annotations

import argparse
import functools
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import bench


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("directory")
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--extra", type=int, default=18000)
    parser.add_argument("--annotations", type=int, default=4000)
    parser.add_argument("--singles", type=int, default=1500)
    args = parser.parse_args()

    from ledger import Ledger
    from ledger.importer import Importer

    with tempfile.TemporaryDirectory(dir=args.directory) as scratch:
        led = Ledger(f"sqlite:///{scratch}/cpu.db")
        rng = random.Random(42)
        lines = bench.batch_lines(args.users, args.extra, args.annotations, rng)
        importer = Importer(led, actor="bench", batch_size=2000)
        wall, cpu = time.perf_counter(), time.process_time()
        summary = importer.apply([(n, text) for n, text in enumerate(lines, 1)])
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        assert not summary.rejected, summary.rejected[:3]
        events = led.recorder.max_notification_id() or 0
        print(
            f"import: {len(lines):,} lines, {events:,} events, CPU {cpu:.2f} s, wall {wall:.1f} s"
        )

        users = [
            str(led.user_id_for_email(f"user{u}@bench.example"))
            for u in rng.sample(range(args.users), min(500, args.users))
        ]

        n = args.singles
        bench.single_commands(led, users, n)  # every user cached, as after the bench's import
        best = min(
            _cpu(functools.partial(bench.single_commands, led, users, n, (r + 1) * n))
            for r in range(3)
        )
        print(f"single commands: CPU {best / n * 1e6:.0f} us per command (best of 3 x {n:,})")
        led.close()


def _cpu(work: Callable[[], None]) -> float:
    start = time.process_time()
    work()
    return time.process_time() - start


if __name__ == "__main__":
    main()
