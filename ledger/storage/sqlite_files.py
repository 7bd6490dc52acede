"""Telling SQLite databases and their companion files apart from other files, so that a file
an output is written to (`audit report --out`, `audit replay --out`) is never a database or a
journal that belongs to one."""

from __future__ import annotations

from pathlib import Path
from typing import Final

MAGIC: Final = b"SQLite format 3\x00"
COMPANION_SUFFIXES: Final = ("-wal", "-shm", "-journal")


def is_database(path: Path) -> bool:
    """Whether `path` is a SQLite database file (by its header)."""
    try:
        with path.open("rb") as file:
            return file.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def database_of_companion(path: Path) -> Path | None:
    """The database whose write-ahead log, shared memory or rollback journal `path` is named
    as, if that database exists: SQLite reads (or deletes) such a file when it opens it."""
    for suffix in COMPANION_SUFFIXES:
        if path.name.endswith(suffix) and len(path.name) > len(suffix):
            database = path.with_name(path.name.removesuffix(suffix))
            if database.is_file():
                return database
    return None


def database_problem(path: Path) -> str | None:
    """Why nothing but SQLite may write `path` (None if it is not a database's)."""
    if is_database(path):
        return f"{str(path)!r} is a SQLite database"
    database = database_of_companion(path)
    if database is not None:
        shown = str(database)
        return f"{str(path)!r} is named as a companion file of the SQLite database {shown!r}"
    return None
