"""The mark of a point-in-time replay file (`ledger audit replay`): a table of one row beside
the read models, saying up to which instant the file was built and from which head of the log.
The write side refuses such a file (it holds read models, not a log), the read side keeps
answering queries from it, and a replay replaces only a file that carries the mark."""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ledger.errors import ValidationError
from ledger.storage.settings import sqlite_file

TABLE: Final = "ledger_replay"


@dataclass(frozen=True)
class ReplayMark:
    until: str  # the instant replayed up to (ISO 8601)
    position: int  # the head of the source log the replay read up to (0: an empty log)
    hash: str  # that head's link in the integrity chain
    events: int  # how many events the file holds
    made_at: str  # when the replay was made (ISO 8601)

    def describe(self) -> str:
        return (
            f"a point-in-time replay up to {self.until} ({self.events} events, "
            f"from a log whose head was position {self.position})"
        )


def write(path: Path, mark: ReplayMark) -> None:
    """Mark the SQLite file at `path` as a replay; leave it as one self-contained file."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute(
            f"CREATE TABLE {TABLE} (until TEXT NOT NULL, position BIGINT NOT NULL, "
            "hash TEXT NOT NULL, events BIGINT NOT NULL, made_at TEXT NOT NULL)"
        )
        connection.execute(
            f"INSERT INTO {TABLE} VALUES (?, ?, ?, ?, ?)",
            (mark.until, mark.position, mark.hash, mark.events, mark.made_at),
        )
        connection.execute("PRAGMA journal_mode = DELETE")  # folds the WAL into the file
    finally:
        connection.close()


def read_file(path: Path) -> ReplayMark | None:
    """The mark of the SQLite file at `path`; None if there is no such file, or it is not a
    SQLite database, or it carries no mark."""
    if not path.is_file():
        return None
    try:
        # mode=rw: never create the file; it is only read from, and (unlike mode=ro) the
        # connection removes on closing the -shm file that reading a WAL database makes
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True)
    except sqlite3.Error:
        return None
    try:
        with contextlib.suppress(sqlite3.Error):
            row = connection.execute(
                f"SELECT until, position, hash, events, made_at FROM {TABLE}"
            ).fetchone()
            if row is not None:
                return ReplayMark(str(row[0]), int(row[1]), str(row[2]), int(row[3]), str(row[4]))
        return None
    finally:
        connection.close()


def read(url: str) -> ReplayMark | None:
    """The mark of the database at `url` (a replay is always a SQLite file)."""
    path = sqlite_file(url)
    return None if path is None else read_file(path)


def refuse(url: str, why: str) -> None:
    """Raise ValidationError if the database at `url` is a replay file; `why` it cannot
    serve, e.g. "it takes no commands"."""
    mark = read(url)
    if mark is not None:
        raise ValidationError(
            f"{url} is {mark.describe()}, not a ledger: {why}; query it with "
            f"ReadModel(url={url!r}) or `ledger --db {url} query ...`"
        )
