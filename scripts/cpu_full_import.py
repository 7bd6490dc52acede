"""CPU per line of `ledger apply` at a full-like scale: many users (more than the aggregate
cache holds), then lines naming random users, as `bench.py --scale full` imports them.

    python scripts/cpu_full_import.py --users 100000 --history 200000 --extra 30000 DIR
    python scripts/cpu_full_import.py --profile out.prof ...   # cProfile the timed part

DIR (a tmpfs such as /dev/shm) keeps the base database (`full-USERS-HISTORY.db`: the users
and HISTORY lines of logins and role changes, as `bench.batch_lines` makes them), made once
and copied for each run, so old and new trees can be timed on the same state.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import random
import shutil
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import bench


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("directory")
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--extra", type=int, default=30_000)
    parser.add_argument("--history", type=int, default=200_000, help="extra lines in the base")
    parser.add_argument("--profile")
    args = parser.parse_args()

    from ledger import Ledger
    from ledger.importer import Importer

    base = Path(args.directory) / f"full-{args.users}-{args.history}.db"
    if not base.exists():
        led = Ledger(f"sqlite:///{base}")
        lines = bench.batch_lines(args.users, args.history, 0, random.Random(42))
        cpu = time.process_time()
        Importer(led, actor="bench", batch_size=2000).apply(list(enumerate(lines, 1)))
        print(f"built {base}: {len(lines):,} lines, CPU {time.process_time() - cpu:.1f} s")
        led.close()
    work = Path(args.directory) / f"full-{args.users}-run.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{work}{suffix}").unlink(missing_ok=True)
    shutil.copy(base, work)

    rng = random.Random(7)
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    lines = []
    for e in range(args.extra):
        user = f"user{rng.randrange(args.users)}@bench.example"
        if e % 3 == 0:
            moment += timedelta(seconds=7)
            line = {"command": "record_login", "user": user, "at": moment.isoformat()}
        else:
            line = {"command": "grant_role" if e % 3 == 1 else "revoke_role", "user": user}
            line["role"] = "consultant"
        line["command_id"] = f"x-{e}"
        lines.append(json.dumps(line))

    led = Ledger(f"sqlite:///{work}")
    before = led.recorder.max_notification_id() or 0
    importer = Importer(led, actor="bench", batch_size=2000)
    profiler = cProfile.Profile() if args.profile else None
    wall, cpu = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    summary = importer.apply(list(enumerate(lines, 1)))
    if profiler:
        profiler.disable()
        profiler.dump_stats(args.profile)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert not summary.rejected, summary.rejected[:3]
    events = (led.recorder.max_notification_id() or 0) - before
    print(
        f"import of {len(lines):,} lines on {args.users:,} users: {events:,} events, "
        f"CPU {cpu:.2f} s = {cpu / len(lines) * 1e6:.0f} us/line, "
        f"{events / cpu:,.0f} events per CPU second, wall {wall:.1f} s"
    )
    led.close()


if __name__ == "__main__":
    main()
