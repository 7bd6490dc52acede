"""Read models as plain, comparable data: every table's rows, without surrogate ids."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from projections import ReadModel
from projections import tables as t


def dump(rm: ReadModel) -> dict[str, list[tuple[Any, ...]]]:
    tables: dict[str, list[tuple[Any, ...]]] = {}
    with rm.engine.connect() as conn:
        for table in t.READ_MODEL_TABLES:
            columns = [c for c in table.columns if not (c.name == "id" and c.autoincrement is True)]
            rows = conn.execute(select(*columns)).all()
            tables[table.name] = sorted((tuple(row) for row in rows), key=repr)
    return tables


def position(rm: ReadModel) -> int:
    with rm.engine.connect() as conn:
        return int(
            conn.execute(
                select(t.projection_tracking.c.position).where(
                    t.projection_tracking.c.name == "read_models"
                )
            ).scalar_one_or_none()
            or 0
        )
