"""The read models' SQLite binds of times and ids, served from caches (`projections.tables`):
the same text as SQLAlchemy's own processors give, the first time and from the cache, and the
same tables on both databases; and None bound as NULL through the adapter registered for it."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from uuid import UUID
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Column, DateTime, MetaData, Table, Uuid
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.schema import CreateTable

from ledger.storage import database
from projections import tables as t
from projections.tables import UTCDateTime, UUIDKey

SQLITE = sqlite.dialect()


@given(
    moment=st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.timezones()
    )
)
def test_cached_utc_texts_are_sqlalchemys(moment: datetime) -> None:
    ours = UTCDateTime().bind_processor(SQLITE)
    theirs = DateTime().dialect_impl(SQLITE).bind_processor(SQLITE)
    assert ours is not None and theirs is not None
    expected = theirs(moment.astimezone(UTC).replace(tzinfo=None))
    in_utc = moment.astimezone(UTC)
    for value in (moment, in_utc, moment, in_utc):  # the second of each from the cache
        assert ours(value) == expected


def test_equal_times_of_one_zone_are_not_confused() -> None:
    """Within a zone, the repeated hour's two instants compare equal: only UTC's own times
    are cached, so each gets its own text."""
    zone = ZoneInfo("America/New_York")
    first = datetime(2026, 11, 1, 1, 30, tzinfo=zone)
    second = first.replace(fold=1)
    assert first == second and first.astimezone(UTC) != second.astimezone(UTC)
    ours = UTCDateTime().bind_processor(SQLITE)
    assert ours is not None
    for _ in range(2):
        assert ours(first) == "2026-11-01 05:30:00.000000"
        assert ours(second) == "2026-11-01 06:30:00.000000"
    assert ours(first.astimezone(UTC) + timedelta(hours=1)) == "2026-11-01 06:30:00.000000"


@given(st.uuids() | st.builds(UUID, int=st.integers(0, 2**128 - 1)))
def test_cached_uuid_hexes_are_sqlalchemys(value: UUID) -> None:
    ours = UUIDKey().bind_processor(SQLITE)
    theirs = Uuid().dialect_impl(SQLITE).bind_processor(SQLITE)
    assert ours is not None and theirs is not None
    assert ours(value) == ours(value) == theirs(value) == value.hex
    assert ours(None) is None


def test_uuid_columns_are_created_as_before() -> None:
    """`UUIDKey` changes how an id is bound on SQLite, not the tables."""
    for dialect in (SQLITE, postgresql.dialect()):
        for table in t.metadata.sorted_tables:
            plain = Table(
                table.name,
                MetaData(),
                *(
                    Column(c.name, Uuid, primary_key=c.primary_key, nullable=c.nullable)
                    if isinstance(c.type, UUIDKey)
                    else c._copy()
                    for c in table.columns
                ),
            )
            ours = str(CreateTable(table).compile(dialect=dialect))
            assert ours == str(CreateTable(plain).compile(dialect=dialect))
        ours_pg = UUIDKey().bind_processor(postgresql.dialect())
        theirs_pg = Uuid().dialect_impl(postgresql.dialect()).bind_processor(postgresql.dialect())
        assert (ours_pg is None) == (theirs_pg is None)


def test_none_binds_null_through_the_registered_adapter() -> None:
    assert sqlite3.adapters[(type(None), sqlite3.PrepareProtocol)] is database._null
    with closing(sqlite3.connect(":memory:")) as conn:
        conn.execute("CREATE TABLE t (a, b)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(1, None), (None, "x")])
        rows = conn.execute("SELECT typeof(a), typeof(b), a IS NULL, b IS NULL FROM t").fetchall()
    assert rows == [("integer", "null", 0, 1), ("null", "text", 1, 0)]
