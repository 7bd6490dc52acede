"""Read models as plain, comparable data (for the tests)."""

from __future__ import annotations

from projections import ReadModel
from projections.comparison import Rows, table_rows


def dump(rm: ReadModel) -> Rows:
    return table_rows(rm.engine)


def position(rm: ReadModel) -> int:
    return rm.position()
