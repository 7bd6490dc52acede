"""The audit log's row of an event: its fields as JSON, and on SQLite the row bound at once.

Built per event of every catch-up, the row was a quarter of a SQLite rebuild's CPU: a dict
built per event and bound again by the generated binder (a datetime's text, two ids' hex, the
fields through `plain` and `json.dumps`). On SQLite the row is now built as the driver's
parameters directly, and the fields are encoded by orjson whenever the values are ones it
writes as `json.dumps(plain(...))` reads back (strings, integers, booleans, None, UUIDs, UTC
datetimes); any other value (a float: orjson writes NaN as null; a nested dict or list) goes
through `plain` and `json.dumps` as before. The column's text is then compact (`{"a":1}`, not
`{"a": 1}`) and keeps non-ASCII characters unescaped: the same JSON value, read back equal
(tests/test_audit_rows.py compares every event type's row with the binder's)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final
from uuid import UUID

import orjson

from ledger.domain.base import EVENT_METADATA
from projections.prepared import PreparedQuery
from projections.tables import _sqlite_utc_text, _sqlite_uuid_hex

LOG_COLUMNS: Final = (
    "position",
    "timestamp",
    "aggregate_id",
    "aggregate_type",
    "account_id",
    "event",
    "actor",
    "reason",
    "command_id",
    "fields",
)
_AS_IS: Final = frozenset({str, int, float, bool, type(None)})
# what orjson writes as `json.dumps(plain(value))` does, up to spacing and escapes
_ORJSON_EXACT: Final = frozenset({str, int, bool, type(None), UUID})


def plain(value: Any) -> Any:
    """A JSON-friendly copy of an event field."""
    if type(value) in _AS_IS:  # most fields: no isinstance chain
        return value
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set):
        return [plain(item) for item in value]
    return value


def event_fields(event: Any) -> dict[str, Any]:
    # `plain` inlined for the common fields: a call less per field of every event
    return {
        k: v if type(v) in _AS_IS else plain(v)
        for k, v in vars(event).items()
        if k not in EVENT_METADATA
    }


def fields_json(event: Any) -> str:
    """The text of the event's `fields` column: what `json.dumps(event_fields(event))` reads
    back as."""
    fields = {}
    for key, value in vars(event).items():  # one pass: picked and checked
        if key in EVENT_METADATA:  # kept in columns of their own
            continue
        kind = type(value)
        if kind not in _ORJSON_EXACT and (kind is not datetime or value.tzinfo is not UTC):
            return json.dumps(event_fields(event))
        fields[key] = value
    try:
        return orjson.dumps(fields).decode()
    except orjson.JSONEncodeError:  # an integer beyond 64 bits, a lone surrogate
        return json.dumps(event_fields(event))


SQLiteLogRow = Callable[[int, Any, str, UUID | None], list[Any]]


def sqlite_log_row(query: PreparedQuery) -> SQLiteLogRow | None:
    """A builder of the audit log's INSERT parameters on SQLite, straight from the event; None
    when `query` (the INSERT compiled for `LOG_COLUMNS`) does not take them as expected."""
    plan = query._plan
    if query._order is None or not query._in_order or tuple(query._names) != LOG_COLUMNS:
        return None
    processed = {name for name, process, _ in plan if process is not None}
    if processed != {"timestamp", "aggregate_id", "account_id", "fields"}:
        return None
    if _processor(plan, "timestamp") is not _sqlite_utc_text:
        return None
    if any(
        _processor(plan, name) is not _sqlite_uuid_hex for name in ("aggregate_id", "account_id")
    ):
        return None

    def row(position: int, event: Any, kind: str, account_id: UUID | None) -> list[Any]:
        return [
            position,
            _sqlite_utc_text(event.timestamp),
            _sqlite_uuid_hex(event.originator_id),
            kind,
            _sqlite_uuid_hex(account_id),
            type(event).__name__,
            event.actor,
            event.reason,
            event.command_id,
            fields_json(event),
        ]

    return row


def _processor(plan: Sequence[tuple[str, Any, Any]], name: str) -> Any:
    return next(process for column, process, _ in plan if column == name)
