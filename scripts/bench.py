#!/usr/bin/env python3
"""Benchmark: each workload of SPEC §8 beside its physical reference, measured in the same run
on the same database, as a ratio.

    python scripts/bench.py                      # SQLite file, --scale small (under 2 minutes)
    python scripts/bench.py --url postgresql+psycopg://postgres@127.0.0.1/postgres
    python scripts/bench.py --scale full --out bench.json   # 100,000 users, 1,000,000 events

On PostgreSQL the benchmark creates (and drops) a scratch database on the server of --url.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

SCALES = {
    # users, extra events (logins and role changes), annotations, single commands, query samples
    # and changes timed through the change feed
    "tiny": dict(users=200, extra=1_000, annotations=300, singles=150, samples=100, feed=20),
    "small": dict(
        users=5_000, extra=45_000, annotations=10_000, singles=1_000, samples=500, feed=40
    ),
    "full": dict(
        users=100_000, extra=700_000, annotations=10_000, singles=3_000, samples=2_000, feed=40
    ),
}
PLAIN_LIBRARY_TABLE = "application_events"  # the plain library's, on PostgreSQL
NATS_URL = os.environ.get("LEDGER_BENCH_NATS", "nats://127.0.0.1:4222")
PAYLOAD = os.urandom(120).hex().encode()  # about the size of a stored event's state


@dataclass
class Result:
    workload: str
    figure: float
    unit: str
    reference: float
    reference_name: str
    ratio: float
    target: str
    passed: bool | None
    note: str = ""


# -- the databases ------------------------------------------------------------------------------


@contextmanager
def scratch_database(url: str | None) -> Iterator[str]:
    if url is None:
        with tempfile.TemporaryDirectory(prefix="ledger-bench-") as folder:
            yield f"sqlite:///{Path(folder) / 'bench.db'}"
        return
    import psycopg
    from sqlalchemy.engine import make_url

    server = make_url(url)
    name = f"ledger_bench_{uuid.uuid4().hex[:8]}"
    admin = server.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Raw:
    """The physical references: a table shaped like the event table, driven directly."""

    def __init__(self, url: str) -> None:
        self.sqlite = url.startswith("sqlite")
        if self.sqlite:
            import sqlite3

            self.conn: Any = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute(
                "CREATE TABLE bench_events (originator_id TEXT, originator_version INTEGER, "
                "topic TEXT, state BLOB, PRIMARY KEY (originator_id, originator_version))"
            )
            self.mark = "?"
        else:
            import psycopg

            self.conn = psycopg.connect(
                url.replace("postgresql+psycopg", "postgresql"), autocommit=True
            )
            self.conn.execute(
                "CREATE TABLE bench_events (originator_id uuid, originator_version bigint, "
                "topic text, state bytea, notification_id bigserial UNIQUE, "
                "PRIMARY KEY (originator_id, originator_version))"
            )  # notification_id indexed, as in the event table: the ordered scan uses it
            self.mark = "%s"
        self.insert = (
            f"INSERT INTO bench_events (originator_id, originator_version, topic, "
            f"state) VALUES ({', '.join([self.mark] * 4)})"
        )

    def _row(self) -> tuple[Any, ...]:
        key = uuid.uuid4()
        return (key.hex if self.sqlite else key, 1, "ledger.domain.users:User.RoleGranted", PAYLOAD)

    def single_inserts(self, count: int) -> float:
        start = time.perf_counter()
        for _ in range(count):
            if self.sqlite:
                self.conn.execute("BEGIN")
                self.conn.execute(self.insert, self._row())
                self.conn.execute("COMMIT")
            else:
                with self.conn.transaction():
                    self.conn.execute(self.insert, self._row())
        return count / (time.perf_counter() - start)

    def executemany(self, count: int) -> float:
        rows = [self._row() for _ in range(count)]
        start = time.perf_counter()
        if self.sqlite:
            self.conn.execute("BEGIN")
            self.conn.executemany(self.insert, rows)
            self.conn.execute("COMMIT")
        else:
            with self.conn.transaction(), self.conn.cursor() as cursor:
                cursor.executemany(self.insert, rows)
        return count / (time.perf_counter() - start)

    def point_selects(self, count: int, distinct: int) -> list[float]:
        """Latencies of `count` indexed point SELECTs, under the queries' own access pattern:
        `distinct` keys drawn at random over the whole table, asked in turn, round after round,
        as the has_role rows ask `distinct` users (`count` calls in all).

        Its table is written at the start of the run, the read models the queries use just
        before them. At --scale full, half an hour on, the table's pages had left the OS page
        cache (this machine drops untouched pages with memory free), so the reference timed
        disk reads: 79 and 220 us p50, against 6.6 us. Reproduced on a 103k-row table in a
        285 MB ledger file: 17.5 us cached, 63-83 us with its pages evicted (posix_fadvise).
        So the table is read once first, as the read models were just rewritten. Not easier
        than the queries: on SQLite it runs on a fresh connection, whose own page cache starts
        empty as the reader's does after the rebuild's writes."""
        keys = [
            row[0] for row in self.conn.execute("SELECT originator_id FROM bench_events").fetchall()
        ]
        self.conn.execute("SELECT sum(length(state)) FROM bench_events").fetchone()
        conn = self.conn
        if self.sqlite:
            import sqlite3

            path = self.conn.execute("PRAGMA database_list").fetchone()[2]
            conn = sqlite3.connect(path, isolation_level=None)
        query = (
            f"SELECT state FROM bench_events WHERE originator_id = {self.mark} AND "
            f"originator_version = 1"
        )
        chosen = random.sample(keys, min(distinct, count, len(keys)))
        latencies = []
        for key in (chosen * -(-count // len(chosen)))[:count]:
            start = time.perf_counter()
            conn.execute(query, (key,)).fetchone()
            latencies.append(time.perf_counter() - start)
        if conn is not self.conn:
            conn.close()
        return latencies

    def top_up(self, rows: int) -> None:
        """Grow the table to `rows` rows, so a scan reads as many rows as the event log holds."""
        have = self.conn.execute("SELECT count(*) FROM bench_events").fetchone()[0]
        if rows > have:
            self.executemany(rows - have)
        if not self.sqlite:
            self.conn.execute("VACUUM ANALYZE bench_events")  # a settled table, hint bits set

    def settle(self) -> None:
        """Flush what earlier workloads left to write (a checkpoint: SQLite's WAL into the
        database file, PostgreSQL's CHECKPOINT; then the kernel's dirty pages), so each timed
        workload starts, as the references do, with no writeback in flight: right after the
        full import, singles on SQLite ran at 1,644/s in the run and at ~2,200/s on a copy of
        the same database."""
        if self.sqlite:
            # the WAL the workload before left (the projector's connection checkpoints every
            # 40 MB) copied into the database file: every reader then reads pages from the file
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        else:
            self.conn.execute("CHECKPOINT")
        os.sync()

    def others(self) -> str:
        """What else the server is running (autovacuum workers, other queries), for the log."""
        if self.sqlite:
            return "n/a"
        rows = self.conn.execute(
            "SELECT backend_type, left(query, 60) FROM pg_stat_activity "
            "WHERE state <> 'idle' AND pid <> pg_backend_pid() AND backend_type <> 'walsender'"
        ).fetchall()
        return "; ".join(f"{kind}: {query}" for kind, query in rows) or "nothing"

    def full_scan(self) -> float:
        """Rows per second of an ordered scan in pages of 10,000 (on PostgreSQL through a
        server-side cursor: a client-side one would first hold the whole table in memory)."""
        order = "rowid" if self.sqlite else "notification_id"
        query = f"SELECT * FROM bench_events ORDER BY {order}"
        start = time.perf_counter()
        count = 0
        if self.sqlite:
            cursor = self.conn.execute(query)
            while rows := cursor.fetchmany(10_000):
                count += len(rows)
        else:
            with self.conn.transaction(), self.conn.cursor(name="bench_scan") as cursor:
                cursor.execute(query)
                while rows := cursor.fetchmany(10_000):
                    count += len(rows)
        return count / (time.perf_counter() - start)

    def verify_floor(self) -> float:
        """Rows per second of verify's own read and hashing (`chain_check`'s connection,
        cursor and link computation) over this table, with no link joined or compared: what
        verify in one process must do at least (its links instead all from the genesis)."""
        from ledger.storage import chain_check
        from ledger.storage.chain import GENESIS

        if self.sqlite:
            path = self.conn.execute("PRAGMA database_list").fetchone()[2]
            dialect, connect = "sqlite", {"database": path}
            position, start, stop = "rowid", ":start", ":stop"
        else:
            from psycopg.conninfo import conninfo_to_dict

            dialect, connect = "postgresql", conninfo_to_dict(self.conn.info.dsn)
            position, start, stop = "notification_id", "%(start)s", "%(stop)s"
        scan = (
            f"SELECT {position}, CAST(originator_id AS TEXT), originator_version, topic, state, "
            f"NULL FROM bench_events WHERE {position} >= {start} AND {position} < {stop} "
            f"ORDER BY {position}"
        )
        source = chain_check.Source(dialect, connect, scan, "", "")
        count = 0
        begin = time.perf_counter()
        with chain_check._open(source) as log:
            for page in log.pages(scan, {"start": 0, "stop": 2**62}):
                befores = [GENESIS] * len(page)
                links, error = chain_check._links(page, befores, not self.sqlite)
                assert error is None and len(links) == len(page), error
                count += len(page)
        return count / (time.perf_counter() - begin)

    def tables(self) -> list[str]:
        """The database's tables, but the references' own (and the plain library's)."""
        query = (
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            if self.sqlite
            else "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        )
        theirs = {"bench_events", PLAIN_LIBRARY_TABLE}
        return [name for (name,) in self.conn.execute(query) if name not in theirs]

    def write_back(self, tables: Sequence[str]) -> tuple[float, int]:
        """The floor of a workload that left these tables as they are: the seconds that plain
        `executemany` takes to write their rows into the empty tables (indexes and all, a
        transaction per table), and how many rows. Each table is read, emptied and written
        back with the same rows, so the database ends as it was. It is a generous floor: the
        workload also reads, updates rows, and commits more often."""
        seconds, count = 0.0, 0
        for table in tables:
            columns = "*"
            if self.sqlite:  # the rowid too: the events' notification ids are theirs
                names = [row[1] for row in self.conn.execute(f'PRAGMA table_info("{table}")')]
                columns = ", ".join(["rowid", *(f'"{name}"' for name in names)])
            select = f'SELECT {columns} FROM "{table}"'
            if self.sqlite:
                rows = self.conn.execute(select).fetchall()
                self.conn.execute(f'DELETE FROM "{table}"')  # at once: truncate optimisation
            else:
                from psycopg.types.string import TextLoader

                with self.conn.cursor() as cursor:
                    # JSON as text: written back as it was read
                    for json_type in ("json", "jsonb"):
                        cursor.adapters.register_loader(json_type, TextLoader)
                    rows = cursor.execute(select).fetchall()
                self.conn.execute(f'TRUNCATE "{table}"')
            if not rows:
                continue
            marks = ", ".join([self.mark] * len(rows[0]))
            into = f'"{table}"' if columns == "*" else f'"{table}" ({columns})'
            insert = f"INSERT INTO {into} VALUES ({marks})"
            self.settle()
            start = time.perf_counter()
            if self.sqlite:
                self.conn.execute("BEGIN")
                self.conn.executemany(insert, rows)
                self.conn.execute("COMMIT")
            else:
                with self.conn.transaction(), self.conn.cursor() as cursor:
                    cursor.executemany(insert, rows)
            seconds += time.perf_counter() - start
            count += len(rows)
        return seconds, count

    def close(self) -> None:
        self.conn.close()


# -- the plain library, for comparison -----------------------------------------------------------


def plain_library(url: str, count: int) -> tuple[float, float]:
    """The plain eventsourcing library on the same database: events/s saving events of aggregates
    built beforehand, 1,000 per save (the most any import through it can reach), and events/s
    reading and decoding its notification log, applying nothing (the most any projection
    through it can reach). On SQLite in a file beside the benchmark's (its table name is fixed);
    on PostgreSQL in a table of its own."""
    from eventsourcing.application import Application

    PlainUser = _plain_user_class()
    app: Application[uuid.UUID] = Application(env=plain_library_env(url))
    table = getattr(app.recorder, "events_table_name", None)
    assert url.startswith("sqlite") or table == PLAIN_LIBRARY_TABLE, table
    users = [PlainUser(f"user{n}@bench.example") for n in range(count)]
    for user in users:
        user.grant_role("consultant")
    start = time.perf_counter()
    for first in range(0, count, 1000):
        app.save(*users[first : first + 1000])
    save_rate = 2 * count / (time.perf_counter() - start)
    app.close()
    return save_rate, plain_read(url)


def plain_single_saves(url: str, count: int) -> float:
    """Saves/s of the plain library saving one event at a time (a role granted to one of 500
    users held in memory, so nothing is read back): what a single command costs through the
    library with no decision to make, beside the ledger's single commands in the same run."""
    from eventsourcing.application import Application

    app: Application[uuid.UUID] = Application(env=plain_library_env(url))
    users = [_plain_user(f"single{n}@bench.example") for n in range(500)]
    app.save(*users)
    start = time.perf_counter()
    for i in range(count):
        user = users[i % len(users)]
        user.grant_role(f"role{i}")
        app.save(user)
    rate = count / (time.perf_counter() - start)
    app.close()
    return rate


def plain_library_env(url: str) -> dict[str, str]:
    from ledger.storage.settings import eventsourcing_env

    env = eventsourcing_env(url)
    if url.startswith("sqlite"):
        env["PERSISTENCE_MODULE"] = "eventsourcing.sqlite"
        env["SQLITE_DBNAME"] = str(Path(env["SQLITE_DBNAME"]).with_name("plain-library.db"))
    else:
        env["PERSISTENCE_MODULE"] = "eventsourcing.postgres"
    return env


def plain_read(url: str, limit: int | None = None) -> float:
    """Events/s of the plain library reading and decoding its own log (the first `limit`
    events, else all) in pages of 2,000, applying nothing."""
    from eventsourcing.application import Application

    app: Application[uuid.UUID] = Application(env=plain_library_env(url))
    stop = limit
    start, read, position = time.perf_counter(), 0, 1
    while page := app.recorder.select_notifications(start=position, limit=2000, stop=stop):
        for notification in page:
            app.mapper.to_domain_event(notification)
        read += len(page)
        position = page[-1].id + 1
    read_rate = read / (time.perf_counter() - start)
    app.close()
    return read_rate


def ledger_read_results(
    led: Any, url: str, events: int, log: Callable[[str], None]
) -> list[Result]:
    """The ledger's mapper over its own log (personal data opened, what export, catch-up and
    the importer's loads pay) in the same pages as `plain_read`, set beside the plain library
    reading and decoding as many events of its log: best of 3 each, taken in turns."""
    reads, plains = [], []
    for _ in range(3):
        plains.append(plain_read(url, limit=events))
        start, read, position = time.perf_counter(), 0, 1
        while page := led.recorder.select_notifications(start=position, limit=2000, stop=events):
            led.to_domain_events(page)
            led.forget_cached_keys()
            read += len(page)
            position = page[-1].id + 1
        reads.append(read / (time.perf_counter() - start))
    rate, reference = max(reads), max(plains)
    log(
        f"ledger read and decode of {read:,} events: {rate:,.0f} events/s (runs "
        f"{', '.join(f'{r:,.0f}' for r in reads)}; plain {', '.join(f'{r:,.0f}' for r in plains)})"
    )
    return [
        Result(
            "ledger read and decode",
            rate,
            "events/s",
            reference,
            "plain read and decode, same number of events, best of 3, events/s",
            rate / reference,
            "(comparison)",
            None,
            f"{read:,} events in pages of 2,000, personal data opened, nothing applied",
        )
    ]


# -- streaming and the change feed ---------------------------------------------------------------


def stream_results(led: Any, log: Callable[[str], None]) -> list[Result]:
    """`ledger audit stream` of the whole log to a throwaway JetStream subject, beside plain
    nats-py publishing the same payloads (built beforehand), each with its message id and
    awaiting its acknowledgement as the streamer does, to a throwaway stream of its own. Both
    streams are deleted afterwards."""
    import asyncio

    import nats

    from ledger.audit import export as exporting
    from ledger.audit import stream as streaming
    from ledger.audit.brokers import StreamError

    payloads = [
        (item.position, json.dumps(exporting.to_ocsf(item), separators=(",", ":")).encode())
        for item in exporting.recorded(led)
    ]
    tag = uuid.uuid4().hex[:12]
    target = streaming.target(NATS_URL, f"bench.{tag}")
    made: list[str] = []

    async def quiet(_error: Exception) -> None:
        """nats-py reports connection errors here as well as raising them."""

    async def connect() -> Any:
        # nats-py retries a first connection 60 times, 2 s apart, unless told otherwise
        return await nats.connect(
            NATS_URL,
            connect_timeout=5,
            allow_reconnect=False,
            max_reconnect_attempts=2,
            reconnect_time_wait=0.5,
            error_cb=quiet,
        )

    async def plain_publish() -> float:
        connection = await connect()
        try:
            jetstream = connection.jetstream()
            name = f"BENCHREF_{tag}"
            from nats.js.api import StreamConfig

            await jetstream.add_stream(
                StreamConfig(name=name, subjects=[f"benchref.{tag}"], duplicate_window=600.0)
            )
            made.append(name)
            start = time.perf_counter()
            for position, payload in payloads:
                await jetstream.publish(
                    f"benchref.{tag}",
                    payload,
                    stream=name,
                    headers={"Nats-Msg-Id": str(position)},
                )
            return len(payloads) / (time.perf_counter() - start)
        finally:
            await connection.close()

    async def delete_streams() -> None:
        connection = await connect()
        try:
            for name in made:
                await connection.jetstream().delete_stream(name)
        finally:
            await connection.close()

    try:
        reference = asyncio.run(plain_publish())
        start = time.perf_counter()
        done = streaming.stream(led, target)
        seconds = time.perf_counter() - start
        made.append(done.stream)
    except (OSError, TimeoutError, StreamError, nats.errors.Error) as error:
        log(f"stream to NATS not measured: {NATS_URL} unreachable ({error})")
        return []
    finally:
        if made:
            asyncio.run(delete_streams())
    rate = done.published / seconds
    log(
        f"streamed {done.published:,} events to NATS at {rate:,.0f} events/s; plain nats-py "
        f"publish with acks {reference:,.0f} msgs/s; streams {', '.join(made)} deleted"
    )
    return [
        Result(
            "stream events/s to NATS JetStream (ledger audit stream)",
            rate,
            "events/s",
            reference,
            "plain nats-py publish, each acked, same payloads msgs/s",
            rate / reference,
            "(none)",
            None,
            f"{done.published:,} events, connect and cursor writes included",
        )
    ]


def feed_results(url: str, samples: int, log: Callable[[str], None]) -> list[Result]:
    """scripts/feed_latency.py on an empty scratch database of its own: command to a consumer
    long-polling a `ledger serve` process, beside plain GETs of the same server."""
    sys.path.insert(0, str(Path(__file__).parent))
    import feed_latency

    with scratch_database(None if url.startswith("sqlite") else url) as feed_url:
        latencies, round_trips = feed_latency.measure(feed_url, samples)
    reference = percentile(round_trips, 0.5)
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    log(f"feed latency p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms ({samples} changes)")
    return [
        Result(
            "change feed latency, command to long-polling consumer",
            p50 * 1000,
            "ms p50",
            reference * 1000,
            "plain GET /api/ p50 ms",
            p50 / reference,
            "(none)",
            None,
            f"p99 {p99 * 1000:.0f} ms, {samples} changes, the server looks every 0.25 s",
        )
    ]


def api_results(url: str, log: Callable[[str], None]) -> list[Result]:
    """scripts/api_load.py on an empty scratch database of its own (100 users): `GET
    /api/v3_0/users/<id>` with a token through `ledger serve --workers 2`, beside a bare
    FastAPI route returning a constant served the same way, 3,000 requests over 8 keep-alive
    connections, best of 3 runs each, taken in turns; and the floor of the route (`api_load.
    floor_app`: its statements alone, sent raw), served and driven the same way."""
    sys.path.insert(0, str(Path(__file__).parent))
    import api_load

    with scratch_database(None if url.startswith("sqlite") else url) as api_url:
        api, bare, floor = api_load.measure(api_url, requests=3000, concurrency=8, workers=2)
    log(
        f"read API {api.rate:,.0f} requests/s (p50 {api.percentile(0.5) * 1000:.1f} ms, p99 "
        f"{api.percentile(0.99) * 1000:.1f} ms); bare FastAPI route {bare.rate:,.0f} requests/s "
        f"(p50 {bare.percentile(0.5) * 1000:.1f} ms, p99 {bare.percentile(0.99) * 1000:.1f} ms); "
        f"its statements alone {floor.rate:,.0f} requests/s"
    )
    how = (
        "in one pipeline on a psycopg connection"
        if api_url.startswith("postgresql")
        else "one after the other on a sqlite3 connection"
    )
    return [
        ratio_result(
            "read API GET /api/v3_0/users/<id> (ledger serve --workers 2)",
            api.rate,
            "requests/s",
            bare.rate,
            "bare FastAPI route, same server, requests/s",
            0.50,
            f"p50 {api.percentile(0.5) * 1000:.1f} ms, p99 {api.percentile(0.99) * 1000:.1f} ms;"
            f" bare p50 {bare.percentile(0.5) * 1000:.1f} ms, p99 "
            f"{bare.percentile(0.99) * 1000:.1f} ms; 3,000 requests, 8 connections, best of 3",
        ),
        Result(
            "read API: floor, the route's statements alone (same server and workers)",
            floor.rate,
            "requests/s",
            bare.rate,
            "bare FastAPI route, same server, requests/s",
            floor.rate / bare.rate,
            "(none)",
            None,
            f"a route that sends the 3 statements of one request (the token check's, the user's "
            f"and their account's; same SQL and parameters, same driver) raw, {how} in the event "
            f"loop, and returns a constant; the read API runs at {api.rate / floor.rate:.0%} of "
            f"this; p50 {floor.percentile(0.5) * 1000:.1f} ms; "
            + (
                "below 0.50: the target is out of reach of the Python around the statements"
                if floor.rate < 0.5 * bare.rate
                else "not below 0.50: this row does not exclude the target"
            ),
        ),
    ]


# -- measuring ----------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ratio_result(
    workload: str,
    figure: float,
    unit: str,
    reference: float,
    name: str,
    target: float,
    note: str = "",
) -> Result:
    ratio = figure / reference
    return Result(
        workload, figure, unit, reference, name, ratio, f">= {target:.0%}", ratio >= target, note
    )


@contextmanager
def time_spent(*functions: tuple[object, str]) -> Iterator[list[float]]:
    """The seconds spent in these functions (attributes of a class or module) while the block
    runs: each is wrapped for the block, and the one-item list holds the sum when it ends. A
    call made inside another of them counts once, in the outer one."""
    spent = [0.0]
    depth = 0

    def timing(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            nonlocal depth
            depth += 1
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                depth -= 1
                if depth == 0:
                    spent[0] += time.perf_counter() - start

        return timed

    originals = [(owner, name, getattr(owner, name)) for owner, name in functions]
    for owner, name, original in originals:
        setattr(owner, name, timing(original))
    try:
        yield spent
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)


def without_writes_result(
    workload: str, events: int, seconds: float, writing: float, bar: float
) -> Result:
    """The floor row of a projection target: the same run with the seconds its page writer
    spent sending the queued writes to the database and committing its pages (and, where they
    ran, building the query indexes left out of a bulk load and dropping the old read models)
    taken out. What is left (reading and decoding the log, the handlers, binding the rows'
    parameters, the reads in between) is what no change to the writes can remove; below the
    target's share of the bar, only the Python of the projection can close the gap."""
    rate = events / (seconds - writing)
    return Result(
        f"{workload}: without its writes",
        rate,
        "events/s",
        bar,
        "the same bar",
        rate / bar,
        "(none)",
        None,
        f"the same run, the {writing:.2f} s of its {seconds:.2f} s spent sending writes and "
        "committing (and building indexes, dropping tables) taken out; "
        + (
            "below 0.40: out of reach of any change to the writes"
            if rate < 0.40 * bar
            else "not below 0.40: this row does not exclude the target"
        ),
    )


def floor_result(
    workload: str,
    rate: float,
    floor: tuple[float, int],
    events: int,
    reference: float,
    tables: int,
    runs: str = "",
) -> Result:
    """What a workload's target is measured against, set beside the plain database writing the
    rows that workload leaves behind (`runs`: how it was taken, if not once)."""
    seconds, rows = floor
    floor_rate = events / seconds
    return Result(
        f"{workload}: raw floor",
        floor_rate,
        "events/s",
        reference,
        "executemany rows/s",
        floor_rate / reference,
        "(none)",
        None,
        f"the {rows:,} rows of its {tables} tables written back by executemany"
        f"{f', {runs}' if runs else ''}; "
        f"the workload runs at {rate / floor_rate:.0%} of this",
    )


def search_calls(
    rm: Any, account: Any, count: int, annotations: int, rng: random.Random
) -> list[Callable[[], Any]]:
    """The bench's `search_annotations` calls: 6-hour windows over the account's hourly
    annotations, `source="bench"` on every other call."""
    calls: list[Callable[[], Any]] = []
    for i in range(count):
        window = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(
            hours=rng.randrange(max(1, annotations))
        )
        calls.append(
            functools.partial(
                rm.search_annotations,
                account,
                annotations_after=window,
                annotations_before=window + timedelta(hours=6),
                source="bench" if i % 2 else None,
            )
        )
    return calls


def statements_sent(rm: Any, calls: Sequence[Callable[[], Any]]) -> list[list[tuple[str, Any]]]:
    """The SQL and parameters each call sends through the reader, recorded by running each call
    once more."""
    reader = rm.reader
    sent: list[list[tuple[str, Any]]] = []
    run = reader._run

    def recording(sql: str, parameters: Any, *rest: Any) -> Any:
        sent[-1].append((sql, parameters))
        return run(sql, parameters, *rest)

    reader._run = recording
    try:
        for call in calls:
            sent.append([])
            call()
    finally:
        del reader._run
    return sent


def driver_connection(url: str) -> Any:
    """A fresh DB-API connection to the database of `url`, in autocommit."""
    if url.startswith("sqlite"):
        import sqlite3

        return sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    import psycopg

    return psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True)


def statements_alone(url: str, sent: Sequence[Sequence[tuple[str, Any]]]) -> list[float]:
    """Latencies of the SQL statements the calls sent (`statements_sent`), with the parameters
    they bound, replayed on a fresh DB-API connection (each executed and its rows fetched,
    nothing else): the floor of those calls."""
    conn = driver_connection(url)
    latencies = []
    try:
        for sql, parameters in (statement for statements in sent for statement in statements):
            start = time.perf_counter()
            cursor = conn.cursor()
            cursor.execute(sql, parameters)
            cursor.fetchall()
            cursor.close()
            latencies.append(time.perf_counter() - start)
    finally:
        conn.close()
    return latencies


def annotation_models(conn: Any, statements: Sequence[tuple[str, Any]], account: uuid.UUID) -> Any:
    """A search call's statements run on `conn`, their rows validated as one list of models:
    pydantic parses the driver's values itself, from one dict a row; nothing else."""
    rows: list[Any] = []
    for sql, parameters in statements:
        cursor = conn.cursor()
        cursor.execute(sql, parameters)
        rows += cursor.fetchall()
        cursor.close()
    return _annotation_list().validate_python(
        [
            {
                "id": id_,
                "account_id": account,
                "content": content,
                "start": start,
                "end": end,
                "belief_time": belief_time,
                "source": source_user_id or source_name,
                "type": type_,
            }
            for id_, content, start, end, belief_time, source_name, source_user_id, type_ in rows
        ]
    )


@functools.cache
def _annotation_list() -> Any:
    from pydantic import TypeAdapter

    from projections.models import AnnotationModel

    return TypeAdapter(list[AnnotationModel])


def statements_and_models_alone(
    url: str, sent: Sequence[Sequence[tuple[str, Any]]], account: uuid.UUID
) -> list[float]:
    """Latencies of each search call's statements replayed as `statements_alone` does, and its
    rows then validated as models (`annotation_models`): the floor of a search that returns
    validated models."""
    from projections.queries import ANNOTATION_COLUMNS

    conn = driver_connection(url)
    latencies = []
    try:
        cursor = conn.cursor()
        cursor.execute(*sent[0][0])
        assert [column[0] for column in cursor.description] == ANNOTATION_COLUMNS
        cursor.close()
        for statements in sent:
            start = time.perf_counter()
            annotation_models(conn, statements, account)
            latencies.append(time.perf_counter() - start)
    finally:
        conn.close()
    return latencies


def latency_result(
    workload: str, latencies: list[float], reference_p50: float, limit: float
) -> Result:
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    ratio = p50 / reference_p50
    return Result(
        workload,
        p50 * 1e6,
        "us p50",
        reference_p50 * 1e6,
        "raw indexed SELECT p50",
        ratio,
        f"p50 <= {limit:g}x",
        ratio <= limit,
        f"p99 {p99 * 1e6:.0f} us",
    )


def batch_lines(users: int, extra: int, annotations: int, rng: random.Random) -> list[str]:
    lines = [
        json.dumps({"command": "define_role", "name": r, "command_id": f"r-{r}"})
        for r in ("admin", "account-admin", "consultant", "viewer")
    ]
    accounts = max(1, users // 500)
    for a in range(accounts):
        lines.append(
            json.dumps(
                {"command": "create_account", "name": f"Account {a}", "command_id": f"a-{a}"}
            )
        )
    for u in range(users):
        lines.append(
            json.dumps(
                {
                    "command": "create_user",
                    "email": f"user{u}@bench.example",
                    "account": f"Account {u % accounts}",
                    "roles": ["viewer"],
                    "command_id": f"u-{u}",
                }
            )
        )
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    for e in range(extra):
        user = f"user{rng.randrange(users)}@bench.example"
        kind = e % 3
        if kind == 0:
            moment += timedelta(seconds=7)
            lines.append(
                json.dumps(
                    {
                        "command": "record_login",
                        "user": user,
                        "at": moment.isoformat(),
                        "command_id": f"l-{e}",
                    }
                )
            )
        else:
            command = "grant_role" if kind == 1 else "revoke_role"
            lines.append(
                json.dumps(
                    {"command": command, "user": user, "role": "consultant", "command_id": f"g-{e}"}
                )
            )
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for n in range(annotations):
        lines.append(
            json.dumps(
                {
                    "command": "add_annotation",
                    "account": "Account 0",
                    "content": f"note {n}",
                    "start": (start + timedelta(hours=n)).isoformat(),
                    "end": (start + timedelta(hours=n + 2)).isoformat(),
                    "source": "bench" if n % 2 else "monitoring",
                    "type": "label",
                    "command_id": f"n-{n}",
                }
            )
        )
    return lines


class _NotWritten(Exception):
    """Raised in place of the database write by `import_without_writes`: the batch is dropped."""


@functools.cache
def _plain_user_class() -> type[Any]:
    """The plain library's aggregate: a user with roles, made once per process (eventsourcing
    refuses a second class of the same topic)."""
    from eventsourcing.domain import Aggregate, event

    class PlainUser(Aggregate):
        @event("Created")
        def __init__(self, email: str) -> None:
            self.email = email
            self.roles: set[str] = set()

        @event("RoleGranted")
        def grant_role(self, role: str) -> None:
            self.roles.add(role)

    return PlainUser


def _plain_user(email: str) -> Any:
    return _plain_user_class()(email)


IMPORT_SAMPLE_LINES = 20_000  # bounds the row's cost: at --scale full a sample of the users


def import_sample(lines: list[str], budget: int) -> tuple[list[str], int, int]:
    """Lines of every `step`-th user (their creation and every line naming them), every
    `step`-th annotation and all the rest (roles, accounts), unchanged, so that the sample runs
    on its own; at most about `budget` lines. Returns the lines, `step` and how many users."""
    step = -(-len(lines) // budget)
    if step <= 1:
        return lines, 1, sum('"create_user"' in text for text in lines)
    kept_users: set[str] = set()
    users = annotations = 0
    sample = []
    for text in lines:
        data = json.loads(text)
        if data["command"] == "create_user":
            if users % step == 0:
                kept_users.add(data["email"])
            users += 1
            keep = data["email"] in kept_users
        elif "user" in data:
            keep = data["user"] in kept_users
        elif data["command"] == "add_annotation":
            keep = annotations % step == 0
            annotations += 1
        else:
            keep = True
        if keep:
            sample.append(text)
    return sample, step, len(kept_users)


def import_without_writes(url: str, lines: list[str], log: Callable[[str], None]) -> Result:
    """The floor row of the import target: the import's own work per line without the
    database's writes. On a scratch ledger, each batch of `ledger apply` runs with the
    recorder's write replaced by what it computes in Python (the chain's links, the side rows'
    statements) and the batch then dropped, so every line is parsed, validated, decided, its
    events built, encoded, sealed and chained exactly as `apply` does, nothing written (timed,
    the second of two such runs); then for real (timed apart), so the next batch sees the
    state it would. In turn with them, the plain library saves 1,000 aggregates of two events
    (built beforehand, as in `plain_library`) on the same scratch database: the reference,
    measured at the same moments (a loaded machine moves both alike). If even the dry run is
    below the target's share of that save, no change on the database side can meet it."""
    from eventsourcing.application import Application

    from ledger import Ledger
    from ledger.application import aggregate_cache_size
    from ledger.importer import Importer
    from ledger.storage import chain, side_tables

    sample, step, users = import_sample(lines, IMPORT_SAMPLE_LINES)
    numbered: list[tuple[int, str | bytes]] = list(enumerate(sample, 1))
    built = 0

    def build_only(stored_events: Sequence[Any], **kwargs: Any) -> None:
        nonlocal built
        positions = range(1, len(stored_events) + 1)
        chain.links(chain.GENESIS, positions, stored_events)
        list(side_tables.runs(kwargs.get("side_writes", ())))
        built += len(stored_events)
        raise _NotWritten

    dry = first_dry = written = plain = 0.0
    dry_cpu = written_cpu = 0.0
    plain_events = 0
    with scratch_database(None if url.startswith("sqlite") else url) as scratch:
        led = Ledger(scratch)
        plain_app: Application[uuid.UUID] = Application(env=plain_library_env(scratch))
        # untimed: its first save opens its connection and prepares its statements (the
        # ledger opened on the scratch database has done so already)
        plain_app.save(*(_plain_user(f"warm-up-{n}@bench.example") for n in range(1000)))
        importer = Importer(led, actor="bench", batch_size=2000)
        for first in range(0, len(numbered), importer.batch_size):
            chunk = numbered[first : first + importer.batch_size]
            led.recorder.insert_events = build_only  # type: ignore[method-assign]
            # Twice, the second timed: the first warms what the real run after it finds warm
            # (the database's pages read, caches), which timed alone made the dry run slower.
            for timed in (False, True):
                start, cpu = time.perf_counter(), time.process_time()
                try:
                    importer.apply(chunk)
                except _NotWritten:
                    pass
                else:
                    raise AssertionError("a batch of the sample saved nothing")
                if timed:
                    dry += time.perf_counter() - start
                    dry_cpu += time.process_time() - cpu
                else:
                    first_dry += time.perf_counter() - start
            del led.recorder.insert_events  # the recorder's own again
            start, cpu = time.perf_counter(), time.process_time()
            summary = importer.apply(chunk)
            written += time.perf_counter() - start
            written_cpu += time.process_time() - cpu
            assert not summary.rejected, summary.rejected[:3]
            plain_users = [_plain_user(f"user{first}-{n}@bench.example") for n in range(1000)]
            for user in plain_users:
                user.grant_role("consultant")
            start = time.perf_counter()
            plain_app.save(*plain_users)
            plain += time.perf_counter() - start
            plain_events += 2 * len(plain_users)
        events = led.recorder.max_notification_id() or 0
        plain_app.close()
        led.close()
    assert built == 2 * events, (built, events)  # each batch's events built twice, written once
    rate, plain_rate = events / dry, plain_events / plain
    log(
        f"import without the writes: {len(sample):,} lines, {events:,} events, {rate:,.0f} "
        f"events/s (CPU {events / dry_cpu:,.0f} events/s); written: {events / written:,.0f} "
        f"(CPU {events / written_cpu:,.0f}); the first, untimed dry run of each batch: "
        f"{events / first_dry:,.0f}; plain save in turn with them: {plain_rate:,.0f}"
    )
    which = "all the lines" if step == 1 else f"the lines of one user in {step}, {len(sample):,}"
    if users <= aggregate_cache_size():  # at --scale full, unlike the import above
        which += f" ({users:,} users: the aggregate cache holds them all)"
    verdict = (
        "below 0.35: no change on the database side meets the import target"
        if rate / plain_rate < 0.35
        else "not below 0.35: this row does not exclude the import target"
    )
    return Result(
        "batch import without the database writes (an upper bound)",
        rate,
        "events/s",
        plain_rate,
        "plain eventsourcing save in turn with it, events/s",
        rate / plain_rate,
        "(none)",
        None,
        f"{which}: parsed, decided, events built, encoded, sealed and chained as apply does, "
        f"no INSERT, no commit, nor the work after them (its reads run, on caches warmed by a "
        f"first dry run: {events / first_dry:,.0f} events/s = "
        f"{events / first_dry / plain_rate:.2f}); the same batches then written: "
        f"{events / written:,.0f} events/s = {events / written / plain_rate:.2f}; {verdict}",
    )


def single_commands(led: Any, users: Sequence[str], count: int, offset: int = 0) -> None:
    """The benchmark's single commands, numbers `offset` to `offset + count` of the mix: a
    login, a grant of admin, its revocation, in turn, over `users` round-robin."""
    for i in range(offset, offset + count):
        user = users[i % len(users)]
        if i % 3 == 0:
            led.record_login(user)
        elif i % 3 == 1:
            led.grant_role(user, "admin", actor="bench")
        else:
            led.revoke_role(user, "admin", actor="bench")


def child_rss(code: str, url: str) -> tuple[float, float, float]:
    """Run `code` in a fresh Python (after importing the audit module); return the seconds it
    took, the peak RSS in MB of that process (VmHWM: getrusage's maxrss would include this
    parent's, as Linux keeps it across fork and exec), and the largest peak RSS among the
    processes it started (verify's workers)."""
    wrapper = (
        "import resource, sys, time\n"
        "from datetime import UTC, datetime\n"
        "from ledger.audit import Audit\n"
        f"url = {url!r}\n"
        "start = time.perf_counter()\n"
        f"{code}\n"
        "print(time.perf_counter() - start)\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]\n"
        "print(int(hwm.split()[1]) / 1024)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", wrapper], capture_output=True, text=True, check=True
    ).stdout.split()
    return float(output[-3]), float(output[-2]), float(output[-1])


def writer(url: str, users: list[str], count: int) -> tuple[int, int]:
    """One of four concurrent writers: (commands done, errors)."""
    from ledger import Ledger, LedgerError

    led = Ledger(url)
    done = errors = 0
    try:
        for i in range(count):
            user = uuid.UUID(users[i % len(users)])
            try:
                if i % 2:
                    led.record_login(user)
                else:
                    led.grant_role(user, "consultant" if i % 4 else "viewer", actor="bench")
                done += 1
            except LedgerError:
                errors += 1
    finally:
        led.close()
    return done, errors


# -- the run ------------------------------------------------------------------------------------


def run(url: str, scale: dict[str, int], log: Callable[[str], None]) -> list[Result]:
    from sqlalchemy import Connection

    from ledger import Ledger
    from ledger.audit import export as exporting
    from ledger.audit import integrity
    from ledger.importer import Importer
    from projections import ReadModel, read_model
    from projections.page_writer import PageWriter
    from projections.projector import Projector
    from projections.tables import READ_MODEL_TABLES

    rng = random.Random(42)
    results: list[Result] = []
    raw = Raw(url)
    n_ref = max(200, scale["singles"])
    raw.settle()
    many_rate = raw.executemany(max(20_000, scale["users"]))
    log(f"reference: {many_rate:,.0f} executemany rows/s")

    raw.settle()
    plain_save, first_read = plain_library(url, max(20_000, scale["users"]))
    # One of the projection's two references, each best of three as verify's and the exports'
    # are (taken once, the lower of them moved from 53k to 69k events/s between two quiet runs
    # of the same code).
    plain_reads = [first_read]
    for _ in range(2):
        raw.settle()
        plain_reads.append(plain_read(url))
    plain_read_rate = max(plain_reads)
    for workload, rate, note in (
        ("plain eventsourcing: save", plain_save, "aggregates built beforehand, 1,000 per save"),
        (
            "plain eventsourcing: read and decode",
            plain_read_rate,
            "its log in pages, nothing applied, best of 3",
        ),
    ):
        results.append(
            Result(
                workload,
                rate,
                "events/s",
                many_rate,
                "executemany rows/s",
                rate / many_rate,
                "(comparison)",
                None,
                note,
            )
        )
    log(
        f"plain library: save {plain_save:,.0f} events/s, read and decode "
        f"{', '.join(f'{rate:,.0f}' for rate in plain_reads)}"
    )

    led = Ledger(url)
    lines = batch_lines(scale["users"], scale["extra"], scale["annotations"], rng)
    importer = Importer(led, actor="bench", batch_size=2000)
    raw.settle()
    start = time.perf_counter()
    summary = importer.apply([(n, text) for n, text in enumerate(lines, 1)])
    elapsed = time.perf_counter() - start
    assert not summary.rejected, summary.rejected[:3]
    events = led.recorder.max_notification_id() or 0
    results.append(
        ratio_result(
            "batch import (ledger apply)",
            events / elapsed,
            "events/s",
            plain_save,
            "plain eventsourcing save, events/s",
            0.35,
            f"{len(lines):,} lines, {events:,} events",
        )
    )
    log(f"imported {len(lines):,} lines: {events:,} events in {elapsed:.1f} s")
    write_side = raw.tables()
    results.append(
        floor_result(
            "batch import",
            events / elapsed,
            raw.write_back(write_side),
            events,
            many_rate,
            len(write_side),
        )
    )
    results.append(import_without_writes(url, lines, log))
    # The import's lines and line results are this script's, not the ledger's: with them in
    # the heap every garbage collection in the workloads below walks millions of objects (the
    # plain psycopg scan of 779k rows, which makes a UUID per row, ran at 130k rows/s with
    # them and at 520k rows/s in a fresh process). Set them aside from the collector.
    del summary
    gc.collect()
    gc.freeze()

    users = [
        str(led.user_id_for_email(f"user{u}@bench.example"))
        for u in rng.sample(range(scale["users"]), min(500, scale["users"]))
    ]
    singles = scale["singles"]
    raw.settle()
    # The commit-bound reference drifts over minutes (on this machine 4,532 -> 5,687
    # inserts/s within one run, before and after the import): measured here, in the same
    # conditions as the single commands that follow.
    single_rate = raw.single_inserts(n_ref)
    log(f"reference just before the single commands: {single_rate:,.0f} single inserts/s")
    raw.settle()
    start = time.perf_counter()
    single_commands(led, users, singles)
    rate = singles / (time.perf_counter() - start)
    results.append(
        ratio_result(
            "single commands (grant/revoke/login)",
            rate,
            "commands/s",
            single_rate,
            "single-row insert per transaction /s",
            0.50,
        )
    )
    # Why a miss is a miss: the same commit-bound work through the plain library, one event a
    # save and nothing to decide (PostgreSQL's reference, BEGIN/INSERT/COMMIT, is three round
    # trips; a save through the library is one pipelined round trip plus its Python).
    raw.settle()
    plain_singles = plain_single_saves(url, singles)
    results.append(
        Result(
            "plain eventsourcing: single saves",
            plain_singles,
            "saves/s",
            single_rate,
            "single-row insert per transaction /s",
            plain_singles / single_rate,
            "(comparison)",
            None,
            f"one event a save, aggregate in memory; the single commands run at "
            f"{rate / plain_singles:.0%} of this",
        )
    )
    events = led.recorder.max_notification_id() or 0

    for fmt in ("ocsf", "jsonl"):
        # Each best of three, taken in turns with the plain library reading and decoding as
        # many events of its own log, so that both see the same machine (shared, its load
        # moved the plain read from 21k to 58k events/s between two tiny runs).
        exports, reads = [], []
        for _ in range(3):
            raw.settle()
            reads.append(plain_read(url, limit=events))
            start = time.perf_counter()
            with open(os.devnull, "w", encoding="utf-8") as sink:
                exported = exporting.export(led, sink, fmt)
            exports.append(exported.events / (time.perf_counter() - start))
        rate, reference = max(exports), max(reads)
        results.append(
            ratio_result(
                f"audit export --format {fmt}",
                rate,
                "events/s",
                reference,
                f"plain read and decode of {min(events, 2 * max(20_000, scale['users'])):,} "
                "events, best of 3, events/s",
                0.50,
                f"{exported.events:,} events, written to {os.devnull}, best of 3",
            )
        )
        log(
            f"exported {exported.events:,} events as {fmt}: {rate:,.0f} events/s "
            f"(runs {', '.join(f'{r:,.0f}' for r in exports)}; plain read and decode "
            f"{', '.join(f'{r:,.0f}' for r in reads)})"
        )

    raw.settle()
    results.extend(ledger_read_results(led, url, events, log))
    raw.settle()
    results.extend(stream_results(led, log))
    raw.settle()
    results.extend(feed_results(url, scale["feed"], log))
    raw.settle()
    results.extend(api_results(url, log))

    rm = ReadModel(url, page_size=2000)
    # the projection's writes: its pages' queued statements and commits, the indexes built
    # after a bulk load, the read models dropped by a rebuild
    projection_writes = (
        (PageWriter, "send"),
        (Connection, "_commit_impl"),
        (Projector, "_end_bulk_load"),
        (read_model, "_drop_securely"),
    )
    raw.settle()
    with time_spent(*projection_writes) as catch_up_writes:
        start = time.perf_counter()
        projected = rm.catch_up()
        catch_up_seconds = time.perf_counter() - start
    raw.settle()
    with time_spent(*projection_writes) as rebuild_writes:
        start = time.perf_counter()
        rebuilt = rm.rebuild()
        rebuild_seconds = time.perf_counter() - start
    log(f"projected {projected:,} events in {catch_up_seconds:.1f} s")
    read_side = [table.name for table in READ_MODEL_TABLES]
    # best of three, as the plain read above (each leaves the tables as they were)
    write_backs = [raw.write_back(read_side) for _ in range(3)]
    log(
        "rebuild raw floor: the read model's rows written back in "
        f"{', '.join(f'{seconds:.2f}' for seconds, _ in write_backs)} s"
    )
    rebuild_floor = floor_result(
        "projection rebuild",
        rebuilt / rebuild_seconds,
        min(write_backs),
        rebuilt,
        many_rate,
        len(read_side),
        "best of 3",
    )
    # What any projection can reach: the slower of reading and decoding the log (the plain
    # library) and writing the read model's rows (the raw floor).
    projection_bar = min(plain_read_rate, rebuild_floor.figure)
    bar_name = (
        "plain read and decode, events/s"
        if plain_read_rate <= rebuild_floor.figure
        else "rebuild raw floor, events/s"
    )
    for workload, count, seconds in (
        ("projection catch_up", projected, catch_up_seconds),
        ("projection rebuild", rebuilt, rebuild_seconds),
    ):
        results.append(
            ratio_result(workload, count / seconds, "events/s", projection_bar, bar_name, 0.40)
        )
    results.append(rebuild_floor)
    for workload, count, seconds, writes in (
        ("projection catch_up", projected, catch_up_seconds, catch_up_writes),
        ("projection rebuild", rebuilt, rebuild_seconds, rebuild_writes),
    ):
        results.append(without_writes_result(workload, count, seconds, writes[0], projection_bar))

    raw.settle()
    # Like the single inserts, the point SELECT is measured again right before the queries
    # it is set against (on this machine it drifted from 5 to 7 us between runs).
    sample = [uuid.UUID(u) for u in users[: scale["samples"]]]
    asked = (sample * 3)[: scale["samples"]]  # has_role's calls: these users, in turn
    point_p50 = percentile(raw.point_selects(len(asked), len(sample)), 0.5)
    log(f"reference just before the queries: point SELECT p50 {point_p50 * 1e6:.1f} us")
    at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=20)
    checks: list[tuple[str, Callable[[uuid.UUID], bool]]] = [
        ("has_role now", lambda u: rm.has_role(u, "consultant")),
        ("has_role at=", lambda u: rm.has_role(u, "consultant", at=at)),
    ]
    for name, call in checks:
        latencies = []
        for user_id in asked:
            begin = time.perf_counter()
            call(user_id)
            latencies.append(time.perf_counter() - begin)
        results.append(latency_result(name, latencies, point_p50, 3))
    account = led.account_id_for_name("Account 0")
    searches = search_calls(rm, account, min(scale["samples"], 300), scale["annotations"], rng)
    latencies = []
    for search in searches:
        begin = time.perf_counter()
        search()
        latencies.append(time.perf_counter() - begin)
    name = f"search_annotations ({scale['annotations']:,} on the account)"
    results.append(latency_result(name, latencies, point_p50, 4))
    sent = statements_sent(rm, searches)
    statement_p50 = percentile(statements_alone(url, sent), 0.5)
    results.append(
        Result(
            "search_annotations: its statements alone, on the driver",
            statement_p50 * 1e6,
            "us p50",
            point_p50 * 1e6,
            "raw indexed SELECT p50",
            statement_p50 / point_p50,
            "(none)",
            None,
            "the SQL and parameters each call sent, run again on a fresh DB-API connection, "
            "rows fetched, nothing built: no search can be faster; "
            + (
                "above 4x: the target is out of reach of the Python around it"
                if statement_p50 > 4 * point_p50
                else "within 4x"
            ),
        )
    )
    assert account is not None
    floor_p50 = percentile(statements_and_models_alone(url, sent, account), 0.5)
    results.append(
        Result(
            "search_annotations: its statements and its models alone",
            floor_p50 * 1e6,
            "us p50",
            point_p50 * 1e6,
            "raw indexed SELECT p50",
            floor_p50 / point_p50,
            "(none)",
            None,
            "the same statements replayed, each call's rows then validated as one list of "
            "models by pydantic (one dict a row, nothing else): "
            + (
                "above 4x: the target is out of reach while the models are validated"
                if floor_p50 > 4 * point_p50
                else "within 4x"
            ),
        )
    )
    rm.close()

    raw.settle()
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "replay.db"
        seconds, rss, _ = child_rss(
            f"with Audit(url) as a: a.replay(datetime.now(UTC), {str(out)!r})", url
        )
    results.append(
        Result(
            "point-in-time replay (all events)",
            seconds,
            "s",
            catch_up_seconds,
            "catch_up s",
            seconds / catch_up_seconds,
            "<= 1.5x catch_up",
            seconds <= 1.5 * catch_up_seconds,
            f"peak RSS {rss:.0f} MB",
        )
    )
    results.append(
        Result("replay peak RSS", rss, "MB", 300, "limit MB", rss / 300, "<= 300 MB", rss <= 300)
    )
    raw.top_up(events)  # the reference scan reads as many rows as verify does
    raw.settle()
    # Best of three, the stricter reference for verify.
    log(f"just before the scans the server was running: {raw.others()}")
    scans = [raw.full_scan() for _ in range(3)]
    scan_rate = max(scans)
    log(
        f"reference: full ordered scan of {events:,} rows at "
        f"{', '.join(f'{rate:,.0f}' for rate in scans)} rows/s"
    )
    hashing_rate = max(raw.verify_floor() for _ in range(3))
    raw.settle()
    seconds, own_rss, worker_rss = child_rss("with Audit(url) as a: assert a.verify().ok", url)
    # The workers run side by side with the verifying process: count each at the largest
    # worker's peak (an upper bound of what they held together).
    processes = integrity.processes_for(events)
    rss = own_rss + (processes - 1) * worker_rss
    log(
        f"verify: {processes} process{'es' if processes > 1 else ''}, peak RSS {own_rss:.0f} MB + "
        f"{processes - 1} x {worker_rss:.0f} MB"
    )
    results.append(
        ratio_result(
            "verify",
            events / seconds,
            "events/s",
            scan_rate,
            f"full ordered scan of {events:,} rows, rows/s",
            0.50,
            f"{processes} process{'es' if processes > 1 else ''}, peak RSS {rss:.0f} MB",
        )
    )
    results.append(
        Result(
            "verify: floor (its own read and hashing of the reference table, no links)",
            hashing_rate,
            "rows/s",
            scan_rate,
            "full ordered scan, rows/s",
            hashing_rate / scan_rate,
            "(none)",
            None,
            "no link joined or compared, one process: verify in one process stays below this "
            + (
                "ratio; below 0.50, one process cannot meet the target"
                if hashing_rate < 0.5 * scan_rate
                else "ratio; it does not exclude the target"
            )
            + (f" (verify ran {processes} processes here)" if processes > 1 else ""),
        )
    )
    results.append(
        Result("verify peak RSS", rss, "MB", 300, "limit MB", rss / 300, "<= 300 MB", rss <= 300)
    )

    if not url.startswith("sqlite"):
        from concurrent.futures import ProcessPoolExecutor

        per_writer = max(50, scale["singles"] // 4)
        raw.settle()
        start = time.perf_counter()
        with ProcessPoolExecutor(4) as pool:
            outcomes = list(pool.map(writer, [url] * 4, [users] * 4, [per_writer] * 4))
        seconds = time.perf_counter() - start
        done = sum(o[0] for o in outcomes)
        errors = sum(o[1] for o in outcomes)
        results.append(
            Result(
                "4 writer processes",
                done / seconds,
                "commands/s",
                single_rate,
                "single-row insert per transaction /s",
                done / seconds / single_rate,
                "zero errors",
                errors == 0,
                f"{errors} errors",
            )
        )
    led.close()
    raw.close()
    return results


def show(results: list[Result], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in ("workload", "figure", "reference", "ratio", "target", ""):
        table.add_column(column)
    for r in results:
        table.add_row(
            r.workload + (f" ({r.note})" if r.note else ""),
            f"{r.figure:,.1f} {r.unit}",
            f"{r.reference:,.1f} ({r.reference_name})",
            f"{r.ratio:.2f}",
            r.target,
            "" if r.passed is None else ("pass" if r.passed else "MISS"),
        )
    Console(width=160).print(table)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="PostgreSQL server (a scratch database is made on it).")
    parser.add_argument("--scale", choices=sorted(SCALES), default="small")
    parser.add_argument("--out", help="Write the results as JSON to this file.")
    args = parser.parse_args()
    started = time.perf_counter()
    with scratch_database(args.url) as url:
        backend = "SQLite" if url.startswith("sqlite") else "PostgreSQL"
        results = run(url, SCALES[args.scale], lambda m: print(m, file=sys.stderr, flush=True))
    title = (
        f"{backend}, --scale {args.scale}, {datetime.now(UTC):%Y-%m-%d}, "
        f"{time.perf_counter() - started:.0f} s"
    )
    show(results, title)
    if args.out:
        Path(args.out).write_text(
            json.dumps(
                {
                    "backend": backend,
                    "scale": args.scale,
                    "date": datetime.now(UTC).isoformat(),
                    "peak_rss_mb_bench": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                    "results": [asdict(r) for r in results],
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
