"""The one way to open the ledger's database with SQLAlchemy, for every reader and writer of the
read models (projector, queries, API, CLI, tests, benchmark)."""

from __future__ import annotations

import shutil
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy.exc
from eventsourcing.persistence import PersistenceError
from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

from ledger.storage.settings import (
    asks_read_only,
    parse,
    read_only_uri,
    read_only_url,
    sqlite_file,
    url_shown,
)

SECRETS_TABLE = "ledger_secrets"


def _null(value: None) -> None:
    return value


# sqlite3 (Python 3.11) adapts every parameter that is not an int, float or str before binding
# it: for None it asks its protocol's `__adapt__`, which formats an AttributeError and drops it,
# then the value's `__conform__`. An adapter registered for None is found at the first look-up
# and binds the same NULL. (The read models' rows bind a None or two per event.)
sqlite3.register_adapter(type(None), _null)

SQLITE_BUSY_TIMEOUT_MS = 30_000
WRITER_CACHE_KIB = 32 * 1024
WRITER_CHECKPOINT_PAGES = 10_000


def sqlalchemy_url(url: str) -> URL:
    parsed = parse(url)
    if parsed.get_backend_name() == "postgresql":
        return parsed.set(drivername="postgresql+psycopg")
    if asks_read_only(url):
        return make_url(read_only_url(url))
    return parsed


def open_engine(url: str, *, writer: bool = False) -> Engine:
    """An engine on the ledger database. On SQLite a `writer` engine begins its transactions
    with BEGIN IMMEDIATE, so a read-then-write transaction never fails to upgrade its lock;
    a reader's statements run in autocommit."""
    target = sqlalchemy_url(url)
    if target.get_backend_name() != "sqlite":
        return create_engine(target, pool_pre_ping=True)
    engine = create_engine(target)

    read_only = asks_read_only(url)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        if not read_only:  # a read-only file keeps its journal mode
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


def holds_ledger(url: str, secret: str) -> bool:
    """Whether the database holds a ledger: the secret named `secret`, made when the ledger
    was set up. Asked without writing: a missing SQLite file is not created, nor is an
    existing one switched to WAL mode (as eventsourcing does on connecting)."""
    path = sqlite_file(url)
    query = f"SELECT 1 FROM {SECRETS_TABLE} WHERE name = ?"
    if path is not None:
        if not path.is_file():
            return False
        with closing(sqlite3.connect(read_only_uri(path), uri=True)) as conn:
            tables = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
            if conn.execute(tables, (SECRETS_TABLE,)).fetchone() is None:
                return False
            return conn.execute(query, (secret,)).fetchone() is not None
    engine = create_engine(sqlalchemy_url(url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table(SECRETS_TABLE):
                return False
            found = conn.execute(text(query.replace("?", ":name")), {"name": secret})
            return found.first() is not None
    finally:
        engine.dispose()


def connect_once(url: str) -> None:
    """Connect to a PostgreSQL server once, so that one that is down, or a database that does
    not exist, is said at once and in the driver's words: eventsourcing's pool would retry for
    30 s and then say only that it got no connection. Raises psycopg's OperationalError."""
    engine = create_engine(sqlalchemy_url(url), poolclass=NullPool)
    try:
        with engine.connect():
            pass
    finally:
        engine.dispose()


def missing_ledger(url: str) -> str:
    """Why `holds_ledger` said no, in a few words."""
    path = sqlite_file(url)
    return "the file does not exist" if path and not path.exists() else "the database holds none"


DATABASE_ERRORS = (
    PersistenceError,
    sqlalchemy.exc.OperationalError,
    psycopg.OperationalError,
    sqlite3.Error,  # eventsourcing lets some through unwrapped, when it connects
)


def problem_line(error: BaseException, url: str) -> str:
    """One line for a database error (one of DATABASE_ERRORS): what `storage_problem` says,
    else `database problem: ` and the error's first line."""
    problem = storage_problem(error, url)
    if problem is not None:
        return problem
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"database problem: {first_line or type(error).__name__}"


def storage_problem(error: BaseException, url: str) -> str | None:
    """One line saying what went wrong with the database at `url` when `error` (or an error it
    wraps) is the disk being full or the database being read-only; None for anything else."""
    cause = _driver_error(error)
    path = sqlite_file(url)
    url = url_shown(url)
    if isinstance(cause, psycopg.errors.DiskFull):
        return f"disk full: the PostgreSQL server of {url} has no space left; nothing was recorded"
    if isinstance(cause, psycopg.errors.ReadOnlySqlTransaction):
        return f"{url} is read-only: nothing was recorded"
    if not isinstance(cause, sqlite3.Error):
        return None
    name = getattr(cause, "sqlite_errorname", "")
    if name == "SQLITE_FULL" or (name.startswith("SQLITE_IOERR") and _no_space(path)):
        return f"disk full: cannot write to {url}; nothing was recorded"
    if name.startswith("SQLITE_READONLY"):
        return f"{url} is read-only: nothing was recorded"
    return None


def _driver_error(error: BaseException) -> BaseException | None:
    """The sqlite3 or psycopg error behind eventsourcing's and SQLAlchemy's wrappers."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sqlite3.Error | psycopg.Error):
            return current
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return None


def _no_space(path: Path | None) -> bool:
    """Whether the file system holding the SQLite file has no room left (SQLite reports a
    full disk as an I/O error when its shared-memory file cannot grow)."""
    if path is None:
        return False
    try:
        return shutil.disk_usage(path.parent).free < 64 * 1024
    except OSError:
        return False
