"""The stored chain of signed digests: each row signs the integrity chain's head at a position,
and the signature of the row before it (see `ledger.audit.signing`)."""

from __future__ import annotations

from typing import Final

from ledger.storage.side_tables import SideWrite

DDL: Final = (
    "CREATE TABLE IF NOT EXISTS ledger_digests ("
    " number BIGINT PRIMARY KEY, position BIGINT NOT NULL, hash TEXT NOT NULL,"
    " time TEXT NOT NULL, previous TEXT NOT NULL, key_id TEXT NOT NULL, signature TEXT NOT NULL)"
)
COLUMNS: Final = "number, position, hash, time, previous, key_id, signature"
SELECT_LAST: Final = f"SELECT {COLUMNS} FROM ledger_digests ORDER BY number DESC LIMIT 1"
SELECT_PAGE: Final = (
    f"SELECT {COLUMNS} FROM ledger_digests WHERE number > ? ORDER BY number LIMIT ?"
)
SELECT_LINK: Final = "SELECT hash FROM ledger_chain WHERE position = ?"


def insert(
    number: int, position: int, hash: str, time: str, previous: str, key_id: str, signature: str
) -> SideWrite:
    """A digest row; a second digest under the same number fails the whole transaction."""
    return SideWrite(
        f"INSERT INTO ledger_digests ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (number, position, hash, time, previous, key_id, signature),
    )
