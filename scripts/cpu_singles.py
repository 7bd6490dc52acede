"""CPU (and, on PostgreSQL, round trips) per single command of the benchmark's mix (a login, a
grant of admin, its revocation, through the Python API), on cached or uncached users.

    python scripts/cpu_singles.py /dev/shm                       # SQLite in tmpfs, cached users
    python scripts/cpu_singles.py /dev/shm --uncached            # each command a fresh user
    python scripts/cpu_singles.py --url postgresql+psycopg://postgres@127.0.0.1/postgres
    python scripts/cpu_singles.py /dev/shm --profile out.prof    # cProfile the timed part
    python scripts/cpu_singles.py /tmp --ratio                   # the bench's row, wall clock
    PYTHONPATH=/path/to/other/tree python scripts/cpu_singles.py ...

Cached: every user's aggregate is in the cache (as after the bench's import), best of three
passes of `--singles` commands. Uncached: the ledger is opened afresh before each pass and
each command names a user not named before in that pass (the cache-miss path of
`--scale full`, where each user's aggregate is rebuilt from its events). `--ratio`: the bench's
row alone, wall clock (DIR on a disk, not tmpfs): raw single inserts per transaction on the same
database (`bench.Raw`), then as many single commands, three times in turn; the ratio of each
pair and their medians.
"""

from __future__ import annotations

import argparse
import cProfile
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import bench


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("directory", nargs="?", default="/dev/shm")
    parser.add_argument("--url", help="a PostgreSQL server URL: a scratch database is made on it")
    parser.add_argument("--users", type=int, default=1500)
    parser.add_argument("--extra", type=int, default=6000, help="history lines before")
    parser.add_argument("--singles", type=int, default=1500)
    parser.add_argument("--uncached", action="store_true")
    parser.add_argument("--profile")
    parser.add_argument("--ratio", action="store_true")
    args = parser.parse_args()

    from ledger import Ledger
    from ledger.importer import Importer

    with (
        tempfile.TemporaryDirectory(dir=args.directory) as scratch,
        database(args.url, scratch) as url,
    ):
        led = Ledger(url)
        rng = random.Random(42)
        lines = bench.batch_lines(args.users, args.extra, 0, rng)
        summary = Importer(led, actor="bench", batch_size=2000).apply(list(enumerate(lines, 1)))
        assert not summary.rejected, summary.rejected[:3]
        users = [str(led.user_id_for_email(f"user{u}@bench.example")) for u in range(args.users)]
        n = args.singles
        if args.uncached:
            assert n <= len(users), "--uncached names each user once per pass"
        else:
            users = users[:500]
            bench.single_commands(led, users, n)  # every user cached
        if args.ratio:
            ratios(led, url, users, n)
            led.close()
            return
        counter = RoundTrips() if args.url else None
        best, trips = float("inf"), 0
        profiler = cProfile.Profile(time.process_time) if args.profile else None
        for r in range(3):
            if args.uncached:
                led.close()
                led = Ledger(url)
                rng.shuffle(users)
            if counter is not None:
                counter.count = 0
            if profiler is not None:
                profiler.enable()
            start = time.process_time()
            bench.single_commands(led, users, n, (r + 1) * n if not args.uncached else 0)
            cpu = time.process_time() - start
            if profiler is not None:
                profiler.disable()
            best = min(best, cpu)
            if counter is not None:
                trips = counter.count
        if profiler is not None:
            profiler.dump_stats(args.profile)
        kind = "uncached" if args.uncached else "cached"
        print(
            f"single commands ({kind}): CPU {best / n * 1e6:.0f} us per command (best of 3 x {n:,})"
        )
        if counter is not None:
            print(f"round trips: {trips / n:.2f} per command (last pass)")
        led.close()


def ratios(led: Any, url: str, users: list[str], n: int) -> None:
    raw = bench.Raw(url)
    found = []
    for r in range(3):
        raw.settle()
        reference = raw.single_inserts(n)
        raw.settle()
        start = time.perf_counter()
        bench.single_commands(led, users, n, (r + 1) * n)
        rate = n / (time.perf_counter() - start)
        found.append((rate / reference, rate, reference))
        print(
            f"{rate:,.0f} commands/s / {reference:,.0f} single inserts/s = {rate / reference:.2f}"
        )
    found.sort()
    ratio, rate, reference = found[1]
    print(f"median: {ratio:.2f} ({rate:,.0f} / {reference:,.0f})")
    raw.conn.close()


@contextmanager
def database(server: str | None, folder: str) -> Iterator[str]:
    """A scratch SQLite file in `folder`, or a scratch database on the PostgreSQL `server`."""
    if server is None:
        yield f"sqlite:///{folder}/cpu.db"
        return
    with bench.scratch_database(server) as url:
        yield url


class RoundTrips:
    """Counts psycopg's waits on the server (every connection's): one a round trip."""

    def __init__(self) -> None:
        self.count = 0
        import psycopg

        counter = self
        wait = psycopg.Connection.wait

        def counted(conn: Any, gen: Any, *a: Any, **k: Any) -> Any:
            counter.count += 1
            return wait(conn, gen, *a, **k)

        psycopg.Connection.wait = counted  # type: ignore[method-assign,assignment]


if __name__ == "__main__":
    main()
