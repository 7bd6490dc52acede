"""The one way to open the ledger's database with SQLAlchemy, for every reader and writer of the
read models (projector, queries, API, CLI, tests, benchmark)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL

from ledger.storage.settings import parse

SQLITE_BUSY_TIMEOUT_MS = 30_000
WRITER_CACHE_KIB = 32 * 1024
WRITER_CHECKPOINT_PAGES = 10_000


def sqlalchemy_url(url: str) -> URL:
    parsed = parse(url)
    if parsed.get_backend_name() == "postgresql":
        return parsed.set(drivername="postgresql+psycopg")
    return parsed


def open_engine(url: str, *, writer: bool = False) -> Engine:
    """An engine on the ledger database. On SQLite a `writer` engine begins its transactions
    with BEGIN IMMEDIATE, so a read-then-write transaction never fails to upgrade its lock;
    a reader's statements run in autocommit."""
    target = sqlalchemy_url(url)
    if target.get_backend_name() != "sqlite":
        return create_engine(target, pool_pre_ping=True)
    engine = create_engine(target)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.close()

    if writer:

        @event.listens_for(engine, "connect")
        def _configure_writer(dbapi_connection: Any, _record: Any) -> None:
            # The projector writes pages of thousands of rows across a dozen indexes. A bigger
            # page cache, and checkpoints every 40 MB of WAL rather than every 4 MB (a page
            # rewritten by many commits is copied to the file once): catch-up at 300k events
            # of a 1M-event log, 8.5k -> 11.7k events/s. Other connections keep the defaults.
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA cache_size = -{WRITER_CACHE_KIB}")
            cursor.execute(f"PRAGMA wal_autocheckpoint = {WRITER_CHECKPOINT_PAGES}")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(connection: Any) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    # Readers run in autocommit: each statement sees a consistent snapshot of its own, and a
    # point query costs no BEGIN/ROLLBACK round.
    return engine
