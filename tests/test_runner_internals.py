"""Spies on the command runner's internals as they are today: its back-off between attempts
(`ledger.runner.back_off`, sleeping with `time.sleep`) and its look-up for newer events of
cached aggregates (`events_after` on the recorder, from `Runner._stale`). Kept in this one file so
that a move of the runner re-points them here only."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from uuid import UUID

import pytest

from ledger import InactiveUser, Ledger, runner
from tests.conftest import ADMIN

RECORDER_CALLS = (
    "insert_events",
    "select_events",
    "select_notifications",
    "max_notification_id",
    "events_after",
    "select_one",
    "select_all",
)


@pytest.fixture
def other(led: Ledger) -> Iterator[Ledger]:
    """Another writer on the same database, with a cache of its own."""
    ledger = Ledger(led.url)
    try:
        yield ledger
    finally:
        ledger.close()


@pytest.fixture
def back_offs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The attempt numbers the runner backed off after."""
    attempts: list[int] = []
    real = runner.back_off

    def spy(attempt: int) -> None:
        attempts.append(attempt)
        real(attempt)

    monkeypatch.setattr(runner, "back_off", spy)
    return attempts


def clash_on_saves(led: Ledger, other: Ledger, user: UUID, times: int) -> None:
    """Make `led`'s next `times` saves each meet a concurrent write on `user`."""
    real = led.runner.save
    left = [times]

    def save(*objs: Any, **kwargs: Any) -> Any:
        if left[0]:
            left[0] -= 1
            other.record_login(user)
        return real(*objs, **kwargs)

    led.runner.save = save


def spy_on_recorder(led: Ledger) -> list[str]:
    """The recorder methods each command calls (each is a query or a write)."""
    called: list[str] = []
    for name in RECORDER_CALLS:
        real = getattr(led.recorder, name)

        def spy(*args: Any, _name: str = name, _real: Callable[..., Any] = real, **kw: Any) -> Any:
            called.append(_name)
            return _real(*args, **kw)

        setattr(led.recorder, name, spy)
    return called


def test_a_clash_on_a_cached_copy_is_rerun_at_once(
    led: Ledger, other: Ledger, acme: UUID, sleeps: list[float], back_offs: list[int]
) -> None:
    ann = led.create_user("ann@example.org", account_id=acme, actor=ADMIN)
    clash_on_saves(led, other, ann, times=1)
    assert led.record_login(ann)
    assert (sleeps, back_offs) == ([], [])
    assert led.repository.get(ann).login_count == 2


def test_a_clash_on_fresh_state_backs_off_briefly(
    led: Ledger, other: Ledger, acme: UUID, sleeps: list[float], back_offs: list[int]
) -> None:
    """The first clash (on the cached copy) is re-run at once; the second, on state just
    read, backs off once, for at most 2 ms * 2**attempt."""
    ann = led.create_user("ann@example.org", account_id=acme, actor=ADMIN)
    clash_on_saves(led, other, ann, times=2)
    assert led.record_login(ann)
    assert back_offs == [1]
    assert len(sleeps) == 1 and 0 <= sleeps[0] <= 0.004
    assert led.repository.get(ann).login_count == 3


def test_back_offs_grow_and_stay_bounded(
    led: Ledger, other: Ledger, acme: UUID, sleeps: list[float], back_offs: list[int]
) -> None:
    ann = led.create_user("ann@example.org", account_id=acme, actor=ADMIN)
    clash_on_saves(led, other, ann, times=9)
    assert led.record_login(ann)
    assert back_offs == list(range(1, 9))
    assert len(sleeps) == 8
    for attempt, slept in zip(back_offs, sleeps, strict=True):
        assert 0 <= slept <= min(0.25, 0.002 * 2**attempt), (attempt, slept)
    assert sum(sleeps) <= 0.002 * (2**9 - 2)
    assert led.repository.get(ann).login_count == 10


def test_a_change_on_cached_state_asks_nothing_of_the_database(led: Ledger, acme: UUID) -> None:
    """What the command changes is checked by the version on save: no look-up at all."""
    ann = led.create_user("ann@example.org", account_id=acme, actor=ADMIN)
    called = spy_on_recorder(led)
    for _ in range(5):
        assert led.record_login(ann)
    assert called == ["insert_events"] * 5


def test_a_no_op_on_cached_state_confirms_it_in_one_query(led: Ledger, acme: UUID) -> None:
    ann = led.create_user("ann@example.org", account_id=acme, roles=["admin"], actor=ADMIN)
    version: int = led.repository.get(ann).version
    looked_up: list[list[tuple[UUID, int]]] = []
    real = led.side.events_after

    def events_after(positions: Any) -> Any:
        looked_up.append(list(positions))
        return real(positions)

    led.side.events_after = events_after  # type: ignore[method-assign]
    called = spy_on_recorder(led)
    for _ in range(3):
        assert led.grant_role(ann, "admin", actor=ADMIN) is False
    assert looked_up == [[(ann, version)]] * 3
    assert called == ["events_after"] * 3


def test_a_command_that_reads_one_aggregate_and_changes_another_confirms_the_read_one(
    led: Ledger, acme: UUID
) -> None:
    """In its save, by a read guard: no query of its own (a stale read one fails the save and
    the command runs again on fresh state, see test_cached_decisions)."""
    ann = led.create_user("ann@example.org", account_id=acme, actor=ADMIN)
    led.deactivate_user(ann, actor=ADMIN)
    acme_version: int = led.repository.get(acme).version
    looked_up: list[list[tuple[UUID, int]]] = []
    real = led.side.events_after

    def events_after(positions: Any) -> Any:
        looked_up.append(list(positions))
        return real(positions)

    led.side.events_after = events_after  # type: ignore[method-assign]
    guarded: list[Any] = []
    real_insert = led.recorder.insert_events

    def insert_events(*args: Any, **kwargs: Any) -> Any:
        guarded.append(kwargs.get("read_guards"))
        return real_insert(*args, **kwargs)

    led.recorder.insert_events = insert_events  # type: ignore[method-assign]
    called = spy_on_recorder(led)
    assert led.reactivate_user(ann, actor=ADMIN)  # reads Acme (is it open?), changes ann
    assert looked_up == []
    assert called == ["insert_events"]
    assert guarded == [[(acme, acme_version)]]


def test_a_rejection_on_cached_state_confirms_it_in_one_query(led: Ledger, acme: UUID) -> None:
    ann = led.create_user("ann@example.org", account_id=acme, actor=ADMIN)
    led.deactivate_user(ann, actor=ADMIN)
    called = spy_on_recorder(led)
    with pytest.raises(InactiveUser):
        led.record_login(ann)
    assert called == ["events_after"]
