"""Where each streaming target stands: the last log position its broker acknowledged."""

from __future__ import annotations

from typing import Final

from ledger.storage.side_tables import SideWrite

DDL: Final = (
    "CREATE TABLE IF NOT EXISTS ledger_stream_cursors ("
    " target TEXT PRIMARY KEY, position BIGINT NOT NULL)"
)
SELECT: Final = "SELECT position FROM ledger_stream_cursors WHERE target = ?"


def advance(target: str, position: int) -> SideWrite:
    """Set the target's cursor; never moves it back (two streamers at once cannot undo each
    other's progress)."""
    return SideWrite(
        "INSERT INTO ledger_stream_cursors (target, position) VALUES (?, ?)"
        " ON CONFLICT (target) DO UPDATE SET position = excluded.position"
        " WHERE ledger_stream_cursors.position < excluded.position",
        (target, position),
    )
