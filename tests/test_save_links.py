"""A save's chain links and its failures, on both databases. On PostgreSQL a save of a few
events (a single command's) is sent in one round trip, its links computed by the database
(`chain.insert_link_postgres`); a larger one (a batch) has them computed here by
`chain.links`. Either way the log must hold exactly the links `chain.links` computes over the
stored events, and a stale read guard or a version clash must fail the whole save with its own
error (eventsourcing's IntegrityError: no retry, nothing written)."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent

from ledger import Ledger
from ledger.storage.chain import GENESIS, links
from ledger.storage.recorders import LINKED_BY_THE_DATABASE
from tests.conftest import ADMIN


def kept_links(led: Ledger) -> list[tuple[int, str]]:
    return sorted(led.side.select_pairs("SELECT position, hash FROM ledger_chain", ()).items())


def computed_links(led: Ledger) -> list[tuple[int, str]]:
    """`chain.links` over every stored event, as written."""
    notifications = led.recorder.select_notifications(start=1, limit=1_000_000)
    stored = [
        StoredEvent(
            originator_id=n.originator_id,
            originator_version=n.originator_version,
            topic=n.topic,
            state=n.state,
        )
        for n in notifications
    ]
    return links(GENESIS, [n.id for n in notifications], stored)


def spy_on_saves(led: Ledger) -> list[int]:
    """The number of events of each save."""
    sizes: list[int] = []
    real = led.recorder.insert_events

    def insert_events(stored_events: Any, **kwargs: Any) -> Any:
        sizes.append(len(stored_events))
        return real(stored_events, **kwargs)

    led.recorder.insert_events = insert_events  # type: ignore[method-assign]
    return sizes


def test_the_links_of_small_and_large_saves_are_what_chain_links_computes(
    led: Ledger, acme: UUID
) -> None:
    sizes = spy_on_saves(led)
    ann = led.create_user(
        "ann@example.org", account_id=acme, roles=["admin"], actor=ADMIN, reason="décidé ✓"
    )
    led.record_login(ann, ip="192.0.2.7")
    led.grant_role(ann, "consultant", actor=ADMIN, reason="für das Audit — ok")
    led.revoke_role(ann, "consultant", actor=ADMIN)
    with led.batch() as batch:
        for n in range(LINKED_BY_THE_DATABASE):
            led.create_user(f"user{n}@example.org", account_id=acme, roles=["admin"], actor=ADMIN)
        batch.commit()
    bob = led.create_user("bob@example.org", account_id=acme, actor=ADMIN)
    led.erase_user(bob, actor=ADMIN, reason="asked to")
    led.record_login(ann)
    assert max(sizes) > LINKED_BY_THE_DATABASE  # both ways of linking were taken
    assert 1 in sizes and any(1 < size <= LINKED_BY_THE_DATABASE for size in sizes)
    kept = kept_links(led)
    assert len(kept) == led.recorder.max_notification_id()
    assert kept == computed_links(led)


def stored(originator_id: UUID, version: int) -> StoredEvent:
    return StoredEvent(
        originator_id=originator_id,
        originator_version=version,
        topic="ledger.domain.users:User.LoginRecorded",
        state=b"{}",
    )


@pytest.mark.parametrize("size", [1, LINKED_BY_THE_DATABASE + 1])
def test_a_stale_read_guard_fails_the_whole_save(
    led: Ledger, acme: UUID, size: int, sleeps: list[float]
) -> None:
    ann = led.create_user("ann@example.org", account_id=acme, actor=ADMIN)
    version = led.repository.get(ann).version
    led.record_login(ann)  # a newer event than the guard's version
    before = (led.recorder.max_notification_id(), kept_links(led))
    events = [stored(uuid4(), 1) for _ in range(size)]
    with pytest.raises(IntegrityError):
        led.recorder.insert_events(events, read_guards=[(ann, version)])
    assert (led.recorder.max_notification_id(), kept_links(led)) == before
    assert sleeps == []  # failed at once, not retried
    led.recorder.insert_events(events, read_guards=[(ann, version + 1)])  # fresh: saved
    assert kept_links(led) == computed_links(led)


@pytest.mark.parametrize("size", [1, LINKED_BY_THE_DATABASE + 1])
def test_a_version_clash_fails_the_whole_save(
    led: Ledger, acme: UUID, size: int, sleeps: list[float]
) -> None:
    ann = led.create_user("ann@example.org", account_id=acme, actor=ADMIN)
    version = led.repository.get(ann).version
    before = (led.recorder.max_notification_id(), kept_links(led))
    clash = [*(stored(uuid4(), 1) for _ in range(size - 1)), stored(ann, version)]
    with pytest.raises(IntegrityError):
        led.recorder.insert_events(clash)
    assert (led.recorder.max_notification_id(), kept_links(led)) == before
    assert sleeps == []
    assert led.record_login(ann)
    assert kept_links(led) == computed_links(led)


@pytest.mark.parametrize("url", ["postgres"], indirect=True)  # round trips: PostgreSQL's
def test_a_single_command_waits_on_postgresql_once(
    led: Ledger, acme: UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its save (a grant: read guards, the event, its link, the COMMIT) in one round trip."""
    import psycopg._pipeline_base

    syncs: list[None] = []
    real = psycopg._pipeline_base.BasePipeline._enqueue_sync

    def counted(pipeline: Any) -> None:
        syncs.append(None)
        real(pipeline)

    ann = led.create_user("ann@example.org", account_id=acme, actor=ADMIN)
    assert led.grant_role(ann, "admin", actor=ADMIN)  # the policy and role now cached
    assert led.revoke_role(ann, "admin", actor=ADMIN)
    monkeypatch.setattr(psycopg._pipeline_base.BasePipeline, "_enqueue_sync", counted)
    for command in (
        lambda: led.grant_role(ann, "admin", actor=ADMIN),
        lambda: led.record_login(ann),
        lambda: led.revoke_role(ann, "admin", actor=ADMIN),
    ):
        syncs.clear()
        command()
        assert len(syncs) == 1
    assert kept_links(led) == computed_links(led)
