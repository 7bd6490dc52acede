"""The aggregate cache's copies: a copy is independent of the cached aggregate, and every
attribute keeps to the shape that makes the cheap copy a deep one."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from enum import Enum
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.domain import Aggregate

from ledger import Ledger, PermissionDenied
from ledger.demo import record_demo
from ledger.domain import AccessDenial, Account, ExternalSource, LedgerAggregate, Meta, Role, User
from ledger.domain.reviews import ReviewCampaign
from ledger.domain.roles import AccountRole
from ledger.domain.separation import SeparationPolicy
from tests.conftest import ADMIN

IMMUTABLE = (str, int, float, bool, bytes, UUID, datetime, type(None), Enum, frozenset)


def immutable(value: Any) -> bool:
    if isinstance(value, tuple):  # NamedTuples too
        return all(immutable(item) for item in value)
    return isinstance(value, IMMUTABLE) or (
        getattr(type(value), "__dataclass_params__", None) is not None
        and type(value).__dataclass_params__.frozen
    )


def assert_copyable(aggregate: LedgerAggregate) -> None:
    for name, value in vars(aggregate).items():
        if isinstance(value, set | list):
            assert all(immutable(item) for item in value), name
        elif isinstance(value, dict):
            assert all(immutable(k) and immutable(v) for k, v in value.items()), name
        else:
            assert immutable(value), name


def test_every_aggregate_copies_deeply_and_independently(led: Ledger, acme: UUID) -> None:
    ann = led.create_user("ann@acme.org", account_id=acme, actor=ADMIN, roles=["admin"])
    led.record_login(ann, ip="192.0.2.1")
    led.deactivate_user(ann, actor=ADMIN)
    led.grant_account_role(acme, "Consultancy", actor=ADMIN)
    outage, _ = (
        led.add_annotation(
            acme,
            content=content,
            start=datetime(2026, month, 1, tzinfo=UTC),
            end=datetime(2026, month, 2, tzinfo=UTC),
            source="ops",
            actor=ADMIN,
        )
        for content, month in (("Outage", 1), ("Maintenance", 2))
    )
    led.remove_annotation(acme, outage, actor=ADMIN)
    user: User = led.repository.get(ann)
    account: Account = led.repository.get(acme)
    for aggregate in (user, account, led.repository.get(Role.id_for("admin"))):
        assert_copyable(aggregate)
        clone = copy.deepcopy(aggregate)
        assert clone == aggregate and clone is not aggregate

    meta = Meta(actor=ADMIN, reason=None, command_id=None, timestamp=datetime.now(UTC))
    clone_user = copy.deepcopy(user)
    clone_user.reactivate(meta)
    clone_user.grant_role("consultant", meta)
    assert not user.active and user.roles == {"admin"} and not user.pending_events
    clone_account = copy.deepcopy(account)
    clone_account.revoke_role("Consultancy", meta)
    assert account.roles == {"Consultancy"} and len(account.annotations) == 1


def test_a_creation_builds_the_aggregate_the_library_builds(url: str) -> None:
    """`LedgerAggregate.Created.mutate` (the library's, less its filters of the event's fields
    by parameter names) gives, for every creation in the demo's log, what the library's own
    `mutate` gives."""
    record_demo(url)
    led = Ledger(url)
    try:
        led.record_unrecognised_entry("fm", 1, "?", datetime(2026, 1, 1, tzinfo=UTC), actor=ADMIN)
        nobody = led.create_user(
            "nobody@x.org", account_id=led.create_account("X", actor=ADMIN), actor=ADMIN
        )
        with pytest.raises(PermissionDenied):
            led.create_account("Y", actor=ADMIN, as_user=nobody)
        kinds = set()
        for page in range(0, (led.recorder.max_notification_id() or 0), 1000):
            stored = led.recorder.select_notifications(page + 1, 1000)
            for event in led.to_domain_events(stored):
                if isinstance(event, LedgerAggregate.Created):
                    ours = event.mutate(None)
                    theirs = Aggregate.Created.mutate(event, None)
                    assert type(ours) is type(theirs) and vars(ours) == vars(theirs)
                    kinds.add(type(ours))
    finally:
        led.close()
    assert kinds == {
        User,
        Account,
        Role,
        AccountRole,
        ReviewCampaign,
        SeparationPolicy,
        ExternalSource,
        AccessDenial,
    }
