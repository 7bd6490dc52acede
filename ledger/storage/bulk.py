"""Look-ups of many values at once: one `IN (...)` query per chunk of values."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from ledger.storage.recorders import SideTableRecorder

CHUNK: Final = 500  # values per query, well under every driver's limit of parameters


def select_in(
    side: SideTableRecorder, sql: str, values: Sequence[str], *before: str
) -> list[dict[str, Any]]:
    """The rows of `sql` (parameters `before`, then `IN ({marks})`) for many values."""
    rows: list[dict[str, Any]] = []
    for start in range(0, len(values), CHUNK):
        chunk = values[start : start + CHUNK]
        marks = ", ".join("?" * len(chunk))
        rows.extend(side.select_all(sql.format(marks=marks), (*before, *chunk)))
    return rows
