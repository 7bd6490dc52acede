"""Read models as plain rows, to compare two databases' read models table by table."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Engine, Table, select

from ledger.storage.personal_data import sealed_key_id
from projections import tables as t

Rows = dict[str, list[tuple[Any, ...]]]


def table_rows(engine: Engine) -> Rows:
    """Every read-model table's rows, without surrogate ids, in a stable order."""
    tables: Rows = {}
    with engine.connect() as conn:
        for table in t.READ_MODEL_TABLES:
            rows = conn.execute(select(*_compared(table))).all()
            tables[table.name] = sorted((tuple(row) for row in rows), key=repr)
    return tables


def _compared(table: Table) -> list[Column[Any]]:
    return [c for c in table.columns if not (c.name == "id" and c.autoincrement is True)]


def differences(live: Rows, fresh: Rows, *, examples: int = 3) -> list[str]:
    """One entry per table that differs: a line of counts, then a few example rows, each an
    indented line of column=value."""
    names = {table.name: [c.name for c in _compared(table)] for table in t.READ_MODEL_TABLES}
    found = []
    for table in sorted(set(live) | set(fresh)):
        rows = {repr(row): row for row in (*live.get(table, []), *fresh.get(table, []))}
        mine, theirs = (
            Counter(map(repr, live.get(table, []))),
            Counter(map(repr, fresh.get(table, []))),
        )
        only_live = list((mine - theirs).elements())
        only_fresh = list((theirs - mine).elements())
        if only_live or only_fresh:
            columns = names.get(table, [])
            lines = [
                f"{table}: {len(only_live)} rows only in the live read models, "
                f"{len(only_fresh)} only in the replay"
            ]
            lines += [f"  live:   {_shown(columns, rows[key])}" for key in only_live[:examples]]
            lines += [f"  replay: {_shown(columns, rows[key])}" for key in only_fresh[:examples]]
            found.append("\n".join(lines))
    return found


def _shown(columns: list[str], row: tuple[Any, ...]) -> str:
    """A row as `column=value, ...`, each value as it reads (not as Python would write it)."""
    named = zip(columns, row, strict=True) if len(columns) == len(row) else enumerate(row)
    return ", ".join(f"{name}={_value(value)}" for name, value in named)


def _value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    if sealed_key_id(value) is not None:
        return "(sealed)"  # personal data, as the user's key seals it
    return str(value)
