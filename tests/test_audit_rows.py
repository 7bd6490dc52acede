"""The audit log's rows as the projector builds them on SQLite (`projections.audit_rows`): the
same parameters as the generated binder gives for the row's values, the fields the same JSON
value; the read models the same as through the binder; and decoding with personal data left
sealed gives the library's events."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import Mapper
from hypothesis import given
from hypothesis import strategies as st

from ledger import Ledger
from projections import ReadModel
from projections import projector as p
from projections.audit_rows import LOG_COLUMNS, event_fields, fields_json
from tests.readmodel_dump import dump
from tests.test_export import history

__all__ = ["history"]  # the fixture, imported for use here


def _same_json(fast: str, slow: str) -> bool:
    """Whether two texts are the same JSON value (NaN equal to itself)."""
    return fast == slow or json.loads(fast) == json.loads(slow)


def test_sealed_decoding_gives_the_librarys_events(history: Ledger) -> None:
    notifications = history.recorder.select_notifications(start=1, limit=10_000)
    ours = history.to_domain_events(notifications, opened=False)
    library = [Mapper.to_domain_event(history.mapper, n) for n in notifications]
    assert [type(e) for e in ours] == [type(e) for e in library]
    assert [vars(e) for e in ours] == [vars(e) for e in library]
    assert any(str(v).startswith("enc1:") for e in ours for v in vars(e).values())


@pytest.mark.parametrize("url", ["sqlite"], indirect=True)  # built so on SQLite only
@pytest.mark.parametrize("opened", [False, True])
def test_sqlite_rows_are_the_binders(url: str, history: Ledger, opened: bool) -> None:
    model = ReadModel(url)
    try:
        projector = model.projector
        build = projector._log_row
        assert build is not None
        bind = projector._statements.binder(projector._log_query)
        notifications = history.recorder.select_notifications(start=1, limit=10_000)
        events = history.to_domain_events(notifications, opened=opened)
        kinds = set()
        for notification, event in zip(notifications, events, strict=True):
            kind = p.aggregate_type(event)
            account_id = event.originator_id if kind == "Account" else uuid4()
            for account in (account_id, None):
                values = {
                    "position": notification.id,
                    "timestamp": event.timestamp,
                    "aggregate_id": event.originator_id,
                    "aggregate_type": kind,
                    "account_id": account,
                    "event": type(event).__name__,
                    "actor": event.actor,
                    "reason": event.reason,
                    "command_id": event.command_id,
                    "fields": event_fields(event),
                }
                assert tuple(values) == LOG_COLUMNS
                fast, slow = build(notification.id, event, kind, account), bind(values)
                assert fast[:-1] == slow[:-1]
                assert _same_json(fast[-1], slow[-1]), (fast[-1], slow[-1])
            kinds.add(type(event).__name__)
        assert len(kinds) > 30  # every event type
    finally:
        model.close()


def test_read_models_equal_those_through_the_binder(
    url: str, history: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = _rebuilt(url)
    monkeypatch.setattr(p, "sqlite_log_row", lambda query: None)  # every row through the binder
    assert _rebuilt(url) == fast
    assert any(row[5] == "UserErased" for row in fast["audit_log"])


def _rebuilt(url: str) -> Any:
    model = ReadModel(url, page_size=5)
    try:
        model.rebuild()
        return dump(model)
    finally:
        model.close()


class _Event:
    """An event of arbitrary fields, as `vars()` gives them."""

    def __init__(self, fields: dict[str, Any]) -> None:
        self.__dict__.update(fields)  # any name, `self` included


_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
    | st.uuids()
    | st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=2)), None])),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=6,
)


@given(st.dictionaries(st.text(min_size=1), _VALUES, max_size=5))
def test_fields_are_the_json_of_their_plain_values(fields: dict[str, Any]) -> None:
    event = _Event({"timestamp": datetime.now(UTC), "actor": "a", "reason": None, **fields})
    try:
        slow = json.dumps(event_fields(event))
    except ValueError:  # a lone surrogate json cannot encode either
        with pytest.raises(ValueError):
            fields_json(event)
        return
    fast = fields_json(event)
    if fast != slow:
        assert not any(isinstance(v, float) and math.isnan(v) for v in fields.values())
        assert json.loads(fast) == json.loads(slow)


def test_utc_times_and_ids_are_written_as_plain_writes_them() -> None:
    user = UUID(int=7)
    for moment in (
        datetime(2026, 3, 1, tzinfo=UTC),
        datetime(2026, 3, 1, 12, 30, 5, 17, tzinfo=UTC),
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    ):
        event = _Event({"at": moment, "user_id": user, "note": "é\u2028\x00"})
        assert json.loads(fields_json(event)) == {
            "at": moment.isoformat(),
            "user_id": str(user),
            "note": "é\u2028\x00",
        }
