"""The one storage setting, `LEDGER_DATABASE_URL`, turned into what eventsourcing needs."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Final
from urllib.parse import quote, unquote

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from ledger.errors import LedgerError, ValidationError
from ledger.validation import shown

DEFAULT_URL: Final = "sqlite:///ledger.db"
URL_VARIABLE: Final = "LEDGER_DATABASE_URL"


def database_url(url: str | None = None) -> str:
    """The URL given, else `LEDGER_DATABASE_URL`, else the SQLite file `ledger.db`. A URL given
    empty is not "none given": `parse` rejects it, rather than another database being used."""
    if url is not None:
        return url
    return os.environ.get(URL_VARIABLE) or DEFAULT_URL


def parse(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValidationError(f"invalid database URL {_without_password(url)!r}") from None
    shown = repr(parsed.render_as_string(hide_password=True))
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise ValidationError(
                f"invalid database URL {shown}: the ledger needs a SQLite file "
                "(events and read models share it), e.g. sqlite:///ledger.db"
            )
    elif backend == "postgresql":
        if parsed.get_driver_name() not in ("psycopg", "postgresql"):
            raise ValidationError(
                f"invalid database URL {shown}: use the psycopg driver, postgresql+psycopg://"
            )
        if not parsed.database:
            raise ValidationError(f"invalid database URL {shown}: no database name")
    else:
        raise ValidationError(
            f"invalid database URL {shown}: only sqlite:/// and postgresql+psycopg:// are supported"
        )
    return parsed


def _without_password(url: str) -> str:
    """A URL that SQLAlchemy cannot parse, as an error shows it: any password masked, cut."""
    masked = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)
    return masked if len(masked) <= 80 else f"{masked[:80]}..."


class StorageError(LedgerError):
    """The database cannot do what was asked (it is read-only, or its disk is full); nothing
    was recorded."""


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (given as a path, or as a `file:` URI); None for PostgreSQL."""
    parsed = parse(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    name = str(parsed.database)
    if name.startswith("file:"):
        name = unquote(name.removeprefix("file:").split("?", 1)[0])
    path = Path(name).absolute()
    try:
        path.exists()
    except OSError as error:  # a name the file system cannot hold (too long)
        raise ValidationError(f"invalid database URL {shown(url)}: {error.strerror}") from None
    return path


def url_shown(url: str) -> str:
    """The database as messages name it: a SQLite file by its full path, however it was
    given; a server without its password."""
    path = sqlite_file(url)
    if path is not None:
        return f"sqlite:///{path}"
    return parse(url).render_as_string(hide_password=True)


def same_database(url: str, other: str) -> bool:
    """Whether two URLs name the same database, however each was written."""
    path, other_path = sqlite_file(url), sqlite_file(other)
    if path is not None or other_path is not None:
        return path == other_path
    first, second = parse(url), parse(other)
    return (first.host, first.port or 5432, first.database) == (
        second.host,
        second.port or 5432,
        second.database,
    )


def asks_read_only(url: str) -> bool:
    """Whether the URL opens its SQLite file read-only (`?mode=ro` or `immutable=1`)."""
    parsed = parse(url)
    return parsed.get_backend_name() == "sqlite" and (
        parsed.query.get("mode") == "ro" or parsed.query.get("immutable") == "1"
    )


def is_writable(url: str) -> bool:
    """Whether the ledger can record into the database: not a SQLite file opened read-only,
    nor one in a read-only folder or file system (SQLite writes its journal beside the file).
    A PostgreSQL server decides for itself."""
    path = sqlite_file(url)
    if path is None:
        return True
    if asks_read_only(url):
        return False
    if path.exists() and not os.access(path, os.W_OK):
        return False
    return os.access(path.parent, os.W_OK)


def read_only_uri(path: Path) -> str:
    """The SQLite URI that opens `path` without ever writing to it. In a folder where SQLite
    cannot keep its shared-memory file, and with no write-ahead log pending, nothing can
    change the file: it is opened as immutable (SQLite could not open it otherwise)."""
    uri = f"file:{quote(str(path))}?mode=ro"
    log = path.with_name(path.name + "-wal")
    pending = log.exists() and log.stat().st_size > 0
    if not pending and not os.access(path.parent, os.W_OK):
        uri += "&immutable=1"
    return uri


def read_only_url(url: str) -> str:
    """The URL of the same database, opened without writing to it. PostgreSQL: the URL
    itself (the ledger then creates no tables and writes no rows)."""
    path = sqlite_file(url)
    if path is None:
        return url
    database, query = read_only_uri(path).split("?", 1)
    # SQLAlchemy unquotes the URL's path once, and hands SQLite the rest as a URI
    return f"sqlite:///{quote(database, safe='/:')}?{query}&uri=true"


def sqlite_target(url: str) -> str:
    """What `sqlite3.connect(..., uri=True)` opens for a SQLite URL."""
    path = sqlite_file(url)
    assert path is not None
    return read_only_uri(path) if asks_read_only(url) else str(path)


def eventsourcing_env(url: str) -> dict[str, str]:
    """Settings for eventsourcing's persistence module matching the URL."""
    parsed = parse(url)
    if parsed.get_backend_name() == "sqlite":
        return {
            "SQLITE_DBNAME": sqlite_target(url),
            "SQLITE_LOCK_TIMEOUT": "30",
        }
    host = parsed.host or str(parsed.query.get("host", "")) or "/var/run/postgresql"
    return {
        "POSTGRES_DBNAME": str(parsed.database),
        "POSTGRES_HOST": host,
        "POSTGRES_PORT": str(parsed.port or 5432),
        "POSTGRES_USER": parsed.username or "postgres",
        "POSTGRES_PASSWORD": parsed.password or "",
        "POSTGRES_LOCK_TIMEOUT": "30",
        "POSTGRES_ENABLE_DB_FUNCTIONS": "n",
    }


def whole_number_setting(variable: str, *, minimum: int | None = None) -> int | None:
    """The whole number in the environment variable `variable` (None when unset or blank)."""
    setting = os.environ.get(variable, "").strip()
    if not setting:
        return None
    try:
        value = int(setting)
    except ValueError:
        value = None
    if value is None or (minimum is not None and value < minimum):
        rule = "a whole number" if minimum is None else f"a whole number of at least {minimum}"
        given = setting if len(setting) <= 80 else f"{setting[:80]}..."
        raise ValidationError(f"{variable} must be {rule}, not {given!r}")
    return value


def is_postgres(url: str) -> bool:
    return parse(url).get_backend_name() == "postgresql"
