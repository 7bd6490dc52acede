"""Checking the integrity chain over a range of log positions, on a connection of its own.

Each link is checked against the recorded link of the event before it, so ranges are
independent: `Audit.verify` checks one range itself and hands the others to worker processes
(`python -m ledger.storage.chain_check`, the task as JSON on stdin, the result on stdout). This
module and what it imports stay light (no eventsourcing, SQLAlchemy or pandas): a worker peaks
at ~25 MB (measured on 388k events) and starts in ~50 ms."""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final

from ledger.storage.chain import GENESIS

EVENT_WITHOUT_LINK: Final = "an event without a link (inserted, or its link deleted)"
CHANGED: Final = (
    "the event or its link differs from what was recorded "
    "(changed, reordered, or an earlier event removed)"
)
UNREADABLE: Final = "the event's row holds a NULL or a value of the wrong type (changed)"
NOT_EXTENDED: Final = "the log no longer extends the kept digest (history rewritten)"
PAGE: Final = 2000


@dataclass(frozen=True)
class Source:
    """Where to read: `dialect` 'sqlite' (connect: database) or 'postgresql' (connect: psycopg
    keyword arguments); `scan` selects position, originator id, version, topic, state and link
    for start <= position < stop in log order; `link_before` the link of the last event before
    a position; `first` the lowest position of any event. Ids come as text: on PostgreSQL
    as str(UUID) prints them, on SQLite as stored (32 hex digits, dashes ignored)."""

    dialect: str
    connect: dict[str, Any]
    scan: str
    link_before: str
    first: str

    @classmethod
    def of(cls, dialect: str, connect: dict[str, Any], events: str, position: str) -> Source:
        """The queries for an events table whose log position is the column `position`; their
        parameters are named (`start`, `stop`)."""
        start, stop = (":start", ":stop") if dialect == "sqlite" else ("%(start)s", "%(stop)s")
        joined = f"FROM {events} e LEFT JOIN ledger_chain l ON l.position = e.{position}"
        # PostgreSQL joins the two ordered index scans (see _PostgresLog.pages), so the links'
        # scan is bounded too: it would start at the chain's first link. The bounds leave the
        # rows joined as they were (a link's position is its event's).
        within = f" AND l.position >= {start} AND l.position < {stop}"
        return cls(
            dialect,
            connect,
            # PostgreSQL's uuid as text is str(UUID)'s form; SQLite's text is undone in Python
            # (replace() in the query cost a third of a scan)
            scan=f"SELECT e.{position}, CAST(e.originator_id AS TEXT), "
            f"e.originator_version, e.topic, e.state, l.hash "
            f"{joined}{within if dialect == 'postgresql' else ''} "
            f"WHERE e.{position} >= {start} AND e.{position} < {stop} ORDER BY e.{position}",
            link_before=f"SELECT l.hash {joined} WHERE e.{position} < {start} "
            f"ORDER BY e.{position} DESC LIMIT 1",
            first=f"SELECT min({position}) FROM {events}",
        )


@dataclass(frozen=True)
class Checked:
    """What checking one range found."""

    count: int  # events whose links held
    position: int  # the last of them (0: none)
    previous: str  # its link (the link the range started from, if none)
    stop: int  # every event before this position was checked, none from it on
    kept_seen: bool  # the kept digest's position was met, and its link matched
    failure: tuple[int, str] | None = None  # (position, what is wrong there)


def check_range(source: Source, start: int, stop: int, kept: tuple[int, str] | None) -> Checked:
    """Check the events at positions start <= p < stop, in one read transaction."""
    with _open(source) as log:
        previous = log.one(source.link_before, {"start": start}) or GENESIS
        pages = log.pages(source.scan, {"start": start, "stop": stop})
        return _check(pages, previous, stop, kept, source.dialect == "postgresql")


def first_position(source: Source) -> int | None:
    """The lowest position of any event (None: no events). The log starts at 1, but a row
    written straight into the table may sit below: the aggregates still load it."""
    with _open(source) as log:
        found = log.one(source.first, {})
        return None if found is None else int(found)


def _check(
    pages: Iterator[Sequence[Sequence[Any]]],
    previous: str,
    stop: int,
    kept: tuple[int, str] | None,
    dashed: bool = False,
) -> Checked:
    """Check page after page. Each link is computed from the link recorded before it, which is
    the one computed (the chain stops at the first difference): the links of a page are then
    independent, computed in one comprehension and compared as lists, with no Python steps of
    its own per row (this loop is most of the time of a verify). `dashed`: the ids come as
    str(UUID) prints them (PostgreSQL), else as text to strip of dashes and dash again."""
    kept_position, kept_hash = kept if kept is not None else (None, "")  # None: no position is kept
    kept_seen, count, position_seen = False, 0, 0
    for page in pages:
        if not page:
            continue
        recorded = [row[5] for row in page]
        befores = [previous, *recorded[:-1]]
        expected, error = _links(page, befores, dashed)
        bad = None
        if expected != recorded:
            pairs = enumerate(zip(expected, recorded, strict=False))
            bad = next((i for i, (e, r) in pairs if e != r), None)
            if bad is None:  # a row whose link could not be computed, every one before it held
                bad = len(expected)
        last = len(page) if bad is None else bad  # the rows whose links held
        if kept_position is not None and last and page[0][0] <= kept_position <= page[last - 1][0]:
            for i in range(last):
                if page[i][0] == kept_position:
                    if recorded[i] != kept_hash:
                        position = page[i][0]
                        return Checked(
                            count + i + 1, position, recorded[i], position + 1, kept_seen,
                            (position, NOT_EXTENDED),
                        )  # fmt: skip
                    kept_seen = True
                    break
        if bad is not None:
            unreadable = error is not None and bad == len(expected)
            if bad:
                previous, position_seen = recorded[bad - 1], page[bad - 1][0]
            count += bad
            position = page[bad][0]
            problem = (
                EVENT_WITHOUT_LINK
                if recorded[bad] is None
                else UNREADABLE
                if unreadable
                else CHANGED
            )
            return Checked(count, position_seen, previous, position, kept_seen, (position, problem))
        count += len(page)
        previous, position_seen = recorded[-1], page[-1][0]
    return Checked(count, position_seen, previous, stop, kept_seen)


def _links(
    page: Sequence[Sequence[Any]], befores: list[Any], dashed: bool
) -> tuple[list[str], Exception | None]:
    """The links of a page's rows (chain.link_of, inlined), each from the link before it. A row
    that has none (a NULL or a wrong type where the scan expects text or bytes) ends the list
    short, with the error it raised."""
    sha256 = hashlib.sha256
    try:
        if dashed:
            return [
                sha256(f"{p}\x1f{n}\x1f{o}\x1f{v}\x1f{t}\x1f".encode() + s).hexdigest()
                for p, (n, o, v, t, s, _) in zip(befores, page, strict=True)
            ], None
        return [
            sha256(
                f"{p}\x1f{n}\x1f{o[:8]}-{o[8:12]}-{o[12:16]}-{o[16:20]}-{o[20:]}"
                f"\x1f{v}\x1f{t}\x1f".encode()
                + s
            ).hexdigest()
            for p, (n, o, v, t, s, _) in zip(befores, page, strict=True)
            for o in (o.replace("-", ""),)
        ], None
    except Exception:  # found again, row by row
        pass
    links: list[str] = []
    for p, (n, o, v, t, s, _) in zip(befores, page, strict=True):
        try:
            if not dashed:
                o = o.replace("-", "")
                o = f"{o[:8]}-{o[8:12]}-{o[12:16]}-{o[16:20]}-{o[20:]}"
            links.append(sha256(f"{p}\x1f{n}\x1f{o}\x1f{v}\x1f{t}\x1f".encode() + s).hexdigest())
        except Exception as error:
            return links, error
    return links, None


class _SQLiteLog:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def one(self, sql: str, params: Mapping[str, int]) -> Any:
        row = self.connection.execute(sql, params).fetchone()
        return None if row is None else row[0]

    def pages(self, sql: str, params: Mapping[str, int]) -> Iterator[list[Any]]:
        cursor = self.connection.execute(sql, params)
        while rows := cursor.fetchmany(PAGE):
            yield rows


# For the rest of the scan's transaction only (SET LOCAL): the merge join is the plan left.
SCAN_PLAN: Final = ("SET LOCAL enable_nestloop = off", "SET LOCAL enable_hashjoin = off")


class _PostgresLog:
    def __init__(self, connection: Any) -> None:
        self.connection = connection

    def one(self, sql: str, params: Mapping[str, int]) -> Any:
        row = self.connection.execute(sql, params).fetchone()
        return None if row is None else row[0]

    def pages(self, sql: str, params: Mapping[str, int]) -> Iterator[list[Any]]:
        # A merge join of the events' and the links' ordered index scans: a cursor's plan is
        # chosen for its first rows, a nested loop probing the links' index once per event,
        # which cost the server 10x the events' scan. Binary rows: the states' bytes as they
        # are, not in hex (half the client's time).
        for setting in SCAN_PLAN:
            self.connection.execute(setting)
        with self.connection.cursor(name="ledger_chain_check", binary=True) as cursor:
            cursor.execute(sql, params)
            while rows := cursor.fetchmany(PAGE):
                yield rows


@contextlib.contextmanager
def _open(source: Source) -> Iterator[_SQLiteLog | _PostgresLog]:
    """The log, read in one transaction: one snapshot, however long the scan."""
    if source.dialect == "sqlite":
        connection = sqlite3.connect(**source.connect, uri=True, isolation_level=None)
        try:
            connection.execute("BEGIN")
            yield _SQLiteLog(connection)
        finally:
            connection.close()
        return
    import psycopg  # only here: a SQLite worker does without it

    with psycopg.connect(**source.connect) as connection, connection.transaction():
        connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield _PostgresLog(connection)


def main() -> None:
    task = json.load(sys.stdin)
    kept = task["kept"]
    checked = check_range(
        Source(**task["source"]),
        task["start"],
        task["stop"],
        None if kept is None else (kept[0], kept[1]),
    )
    json.dump(asdict(checked), sys.stdout)


if __name__ == "__main__":
    main()
