#!/usr/bin/env python3
"""CPU per `ReadModel.search_annotations` call, and per part of it, with the bench's own calls
(6-hour windows over 10,000 hourly annotations on one account, `source="bench"` on every other
call), on a SQLite ledger of 1,000 users built once into --db.

    python scripts/search_cpu.py --db /tmp/search.db --part search      # CPU seconds, best of 3
    valgrind --tool=callgrind --zero-before=getppid --dump-before=getpgrp \\
        python scripts/search_cpu.py --db /tmp/search.db --part search --rounds 1

Under callgrind, the loop alone is counted: `os.getppid()` marks its start and `os.getpgrp()`
its end (`callgrind.out.<pid>.1`); the set-up and the interpreter's exit are not. Parts:
`search` the whole call; `driver` the statements each call sent, replayed on a fresh DB-API
connection (the bench's "statements alone" row); `validate` the pydantic validation of each
call's list of dicts alone; `floor` the statements and the models validated from their rows.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import bench


def build(url: str) -> None:
    from ledger import Ledger
    from ledger.importer import Importer

    led = Ledger(url)
    lines = bench.batch_lines(1_000, 0, 10_000, random.Random(42))
    summary = Importer(led, actor="bench", batch_size=2000).apply(list(enumerate(lines, 1)))
    assert not summary.rejected, summary.rejected[:3]
    led.close()


def searches(rm: Any, account: Any, count: int) -> list[Callable[[], Any]]:
    """The bench's calls (`scripts/bench.py`, the search_annotations row)."""
    return bench.search_calls(rm, account, count, 10_000, random.Random(1))


def loop(part: str, rm: Any, url: str, calls: list[Callable[[], Any]]) -> Callable[[], None]:
    """One round of `part` over the calls, everything it needs made beforehand."""
    if part == "search":

        def run_searches() -> None:
            for call in calls:
                call()

        return run_searches
    if part == "validate":
        from pydantic import TypeAdapter

        from projections.models import AnnotationModel

        models = TypeAdapter(list[AnnotationModel])
        lists = [[dict(found) for found in call()] for call in calls]

        def validate() -> None:
            for dicts in lists:
                models.validate_python(dicts)

        return validate
    sent = bench.statements_sent(rm, calls)
    conn = bench.driver_connection(url)
    if part == "driver":

        def statements() -> None:
            for statements in sent:
                for sql, parameters in statements:
                    cursor = conn.cursor()
                    cursor.execute(sql, parameters)
                    cursor.fetchall()
                    cursor.close()

        return statements
    if part == "floor":
        account = calls[0].args[0]  # type: ignore[attr-defined]

        def floor() -> None:
            for statements in sent:
                bench.annotation_models(conn, statements, account)

        return floor
    raise SystemExit(f"unknown part {part}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True, help="SQLite file (built when missing)")
    parser.add_argument("--part", default="search")
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds; best one shown")
    parser.add_argument("--repeat", type=int, default=10, help="passes over the calls a round")
    args = parser.parse_args()
    url = f"sqlite:///{args.db}"
    if not Path(args.db).exists():
        build(url)
    from ledger import Ledger
    from projections import ReadModel

    led = Ledger(url)
    account = led.account_id_for_name("Account 0")
    rm = ReadModel(url)
    rm.catch_up()
    calls = searches(rm, account, args.calls)
    once = loop(args.part, rm, url, calls)
    once()  # statements compiled, caches warm
    gc.collect()
    gc.freeze()
    if args.rounds == 1:  # under callgrind: the markers around one pass
        os.getppid()
        once()
        os.getpgrp()
        os._exit(0)
    best = float("inf")
    for _ in range(args.rounds):
        start = time.process_time()
        for _ in range(args.repeat):
            once()
        best = min(best, time.process_time() - start)
    print(f"{args.part}: {best / (args.repeat * len(calls)) * 1e6:.2f} us CPU a call (best round)")
    os._exit(0)


if __name__ == "__main__":
    main()
