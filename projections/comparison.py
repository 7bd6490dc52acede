"""Read models as plain rows, to compare two databases' read models table by table."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import Engine, select

from projections import tables as t

Rows = dict[str, list[tuple[Any, ...]]]


def table_rows(engine: Engine) -> Rows:
    """Every read-model table's rows, without surrogate ids, in a stable order."""
    tables: Rows = {}
    with engine.connect() as conn:
        for table in t.READ_MODEL_TABLES:
            columns = [c for c in table.columns if not (c.name == "id" and c.autoincrement is True)]
            rows = conn.execute(select(*columns)).all()
            tables[table.name] = sorted((tuple(row) for row in rows), key=repr)
    return tables


def differences(live: Rows, fresh: Rows, *, examples: int = 3) -> list[str]:
    """One line per table that differs, with a few example rows."""
    found = []
    for table in sorted(set(live) | set(fresh)):
        mine, theirs = (
            Counter(map(repr, live.get(table, []))),
            Counter(map(repr, fresh.get(table, []))),
        )
        only_live = list((mine - theirs).elements())
        only_fresh = list((theirs - mine).elements())
        if only_live or only_fresh:
            found.append(
                f"{table}: {len(only_live)} rows only in the live read models "
                f"{only_live[:examples]}, {len(only_fresh)} only in the replay "
                f"{only_fresh[:examples]}"
            )
    return found
