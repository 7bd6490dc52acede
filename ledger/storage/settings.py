"""The one storage setting, `LEDGER_DATABASE_URL`, turned into what eventsourcing needs."""

from __future__ import annotations

import os
from typing import Final

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from ledger.errors import ValidationError

DEFAULT_URL: Final = "sqlite:///ledger.db"
URL_VARIABLE: Final = "LEDGER_DATABASE_URL"


def database_url(url: str | None = None) -> str:
    """The URL given, else `LEDGER_DATABASE_URL`, else the SQLite file `ledger.db`."""
    return url or os.environ.get(URL_VARIABLE) or DEFAULT_URL


def parse(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValidationError(f"invalid database URL {url!r}") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise ValidationError(
                f"invalid database URL {url!r}: the ledger needs a SQLite file "
                "(events and read models share it), e.g. sqlite:///ledger.db"
            )
    elif backend == "postgresql":
        if parsed.get_driver_name() not in ("psycopg", "postgresql"):
            raise ValidationError(
                f"invalid database URL {url!r}: use the psycopg driver, postgresql+psycopg://"
            )
        if not parsed.database:
            raise ValidationError(f"invalid database URL {url!r}: no database name")
    else:
        raise ValidationError(
            f"invalid database URL {url!r}: only sqlite:/// and postgresql+psycopg:// are supported"
        )
    return parsed


def eventsourcing_env(url: str) -> dict[str, str]:
    """Settings for eventsourcing's persistence module matching the URL."""
    parsed = parse(url)
    if parsed.get_backend_name() == "sqlite":
        return {
            "SQLITE_DBNAME": str(parsed.database),
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
        raise ValidationError(f"{variable} must be {rule}, not {setting!r}")
    return value


def is_postgres(url: str) -> bool:
    return parse(url).get_backend_name() == "postgresql"
