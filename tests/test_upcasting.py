"""Events are versioned: an event stored by an older version of its class still loads."""

from __future__ import annotations

import json
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from ledger import Ledger
from ledger.domain import User
from ledger.storage.side_tables import SideWrite
from tests.conftest import ADMIN


def test_a_version_1_user_created_event_is_upcast(led: Ledger, acme: UUID) -> None:
    current = led.create_user("ann@example.org", account_id=acme, actor=ADMIN, timezone="UTC")
    # Rewrite the stored event as version 1 wrote it: no class_version, no timezone.
    stored = led.recorder.select_events(current, lte=1)[0]
    state = json.loads(stored.state)
    assert state.pop("class_version") == 2
    del state["timezone"]
    old = StoredEvent(
        originator_id=stored.originator_id,
        originator_version=1,
        topic=stored.topic,
        state=json.dumps(state).encode(),
    )
    event = led.mapper.to_domain_event(old)
    assert isinstance(event, User.UserCreated)
    assert event.timezone == "Europe/Amsterdam"
    assert event.email == "ann@example.org"  # the personal fields still decrypt


def test_a_stored_version_1_event_loads_through_the_repository(url: str) -> None:
    led = Ledger(url)
    try:
        acc = led.create_account("Acme", actor=ADMIN)
        ann = led.create_user("ann@example.org", account_id=acc, actor=ADMIN, timezone="UTC")
        stored = led.recorder.select_events(ann, lte=1)[0]
        state = json.loads(stored.state)
        del state["class_version"], state["timezone"]
        table = "stored_events" if url.startswith("sqlite") else "ledger_events"
        key = ann.hex if url.startswith("sqlite") else str(ann)
        led.side.write_side(
            [
                SideWrite(
                    f"UPDATE {table} SET state = ? "
                    "WHERE originator_id = ? AND originator_version = 1",
                    (json.dumps(state).encode(), key),
                )
            ]
        )
    finally:
        led.close()
    fresh = Ledger(url)
    try:
        user = fresh.repository.get(ann)
        assert user.timezone == "Europe/Amsterdam"
        assert user.email == "ann@example.org"
    finally:
        fresh.close()
