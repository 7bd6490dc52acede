"""A command first decides on the cached aggregates without asking the database for newer
events. Another process's changes must still be seen: through the version clash on save for
what the command changes, and through a confirming look-up for what it only reads."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import UUID

import eventsourcing.utils
import pytest

from ledger import Ledger
from ledger.errors import Conflict
from tests.conftest import ADMIN
from tests.helpers import event_names


@pytest.fixture
def other(led: Ledger) -> Iterator[Ledger]:
    """A second Ledger on the same database: another process, with a cache of its own."""
    ledger = Ledger(led.url)
    try:
        yield ledger
    finally:
        ledger.close()


def _user(led: Ledger, acme: UUID, email: str = "ann@example.org") -> UUID:
    return led.create_user(email, account_id=acme, actor=ADMIN)


def test_a_change_on_a_stale_cached_aggregate_is_saved_at_the_next_version(
    led: Ledger, other: Ledger, acme: UUID
) -> None:
    ann = _user(led, acme)
    assert led.record_login(ann)  # cached here at version 2
    assert other.record_login(ann)  # version 3, unknown to led's cache
    assert led.record_login(ann)
    fresh = Ledger(led.url)
    try:
        stored = fresh.repository.get(ann)
        assert stored.login_count == 3
        assert stored.version == 4
    finally:
        fresh.close()


def test_a_no_op_on_a_stale_cached_aggregate_is_decided_again_on_fresh_state(
    led: Ledger, other: Ledger, acme: UUID
) -> None:
    ann = _user(led, acme)
    assert led.grant_role(ann, "admin", actor=ADMIN)  # led's cache: ann holds admin
    assert other.revoke_role(ann, "admin", actor=ADMIN)
    assert led.grant_role(ann, "admin", actor=ADMIN) is True  # not "already held"
    assert led.last_recorded
    assert event_names(led).count("RoleGranted") == 2
    assert "admin" in led.repository.get(ann).roles


def test_a_rejection_on_a_stale_cached_aggregate_is_decided_again_on_fresh_state(
    led: Ledger, other: Ledger, acme: UUID
) -> None:
    ann = _user(led, acme)
    assert led.deactivate_user(ann, actor=ADMIN)  # led's cache: ann inactive
    assert other.reactivate_user(ann, actor=ADMIN)
    assert led.record_login(ann)  # not "cannot record a login for inactive user"
    assert led.repository.get(ann).login_count == 1


def test_a_no_op_that_stands_on_fresh_state_records_nothing(
    led: Ledger, other: Ledger, acme: UUID
) -> None:
    ann = _user(led, acme)
    assert led.deactivate_user(ann, actor=ADMIN)
    assert other.grant_role(ann, "admin", actor=ADMIN)
    before = event_names(led)
    assert led.deactivate_user(ann, actor=ADMIN) is False
    assert not led.last_recorded
    assert event_names(led) == before


def test_what_a_command_only_reads_is_confirmed_before_its_change_is_saved(
    led: Ledger, other: Ledger, acme: UUID
) -> None:
    ann = _user(led, acme)
    assert led.deactivate_user(ann, actor=ADMIN)
    led.repository.get(acme)  # led's cache: Acme open
    assert led.reactivate_user(ann, actor=ADMIN)
    assert led.deactivate_user(ann, actor=ADMIN)
    # Closing Acme leaves the inactive ann untouched: her version is the same in led's cache.
    assert other.close_account(acme, actor=ADMIN)
    before = event_names(led)
    with pytest.raises(Conflict, match="closed"):
        led.reactivate_user(ann, actor=ADMIN)
    assert event_names(led) == before
    assert not led.repository.get(ann).active


def test_commands_on_cached_aggregates_skip_the_look_up_for_newer_events(
    led: Ledger, acme: UUID
) -> None:
    ann = _user(led, acme)
    led.record_login(ann)
    looked_up: list[object] = []
    real = led.repository.event_store.get

    def counting_get(*args: object, **kwargs: object) -> object:
        looked_up.append(args or kwargs)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    led.repository.event_store.get = counting_get  # type: ignore[method-assign]
    for _ in range(5):
        assert led.record_login(ann)
    assert looked_up == []
    assert led.repository.get(ann).login_count == 6


def test_version_clashes_fail_at_once_and_are_rerun_without_a_pause(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL a statement queued behind the failing INSERT once turned a clash into
    psycopg's PipelineAborted (depending on timing), which eventsourcing retried after
    sleeping 0.2 s."""
    first, second = Ledger(url), Ledger(url)
    slept: list[float] = []
    monkeypatch.setattr(eventsourcing.utils, "sleep", slept.append)
    try:
        first.define_role("admin", actor=ADMIN)
        acme = first.create_account("Acme", actor=ADMIN)
        ann = first.create_user("ann@example.org", account_id=acme, actor=ADMIN)
        for _ in range(30):
            assert second.record_login(ann)
            assert first.record_login(ann)  # clashes on its stale cached copy, then succeeds
        assert slept == []
        assert first.repository.get(ann).login_count == 60
    finally:
        first.close()
        second.close()


def _counting_gets(led: Ledger) -> list[object]:
    looked_up: list[object] = []
    real = led.repository.event_store.get

    def counting_get(*args: object, **kwargs: object) -> object:
        looked_up.append(args or kwargs)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    led.repository.event_store.get = counting_get  # type: ignore[method-assign]
    return looked_up


def test_a_grant_takes_the_absent_separation_policy_as_known_without_a_look_up(
    led: Ledger, acme: UUID
) -> None:
    ann, bob = _user(led, acme), _user(led, acme, "bob@example.org")
    assert led.grant_role(ann, "consultant", actor=ADMIN)  # finds the policy absent
    looked_up = _counting_gets(led)
    assert led.grant_role(bob, "consultant", actor=ADMIN)
    assert led.grant_role(ann, "admin", actor=ADMIN)
    assert looked_up == []


def test_a_separation_rule_defined_by_another_process_is_seen_by_a_grant(
    led: Ledger, other: Ledger, acme: UUID
) -> None:
    """The policy's absence, known from before, is confirmed by the grant's save: another
    process defined a rule meanwhile, so the grant is decided again and refused."""
    ann = _user(led, acme)
    assert led.grant_role(ann, "consultant", actor=ADMIN)  # led: no policy
    other.define_sod_rule("no-admin-consultants", ["consultant", "admin"], actor=ADMIN)
    before = event_names(led)
    with pytest.raises(Conflict, match="no-admin-consultants"):
        led.grant_role(ann, "admin", actor=ADMIN)
    assert event_names(led) == before
    assert "admin" not in led.repository.get(ann).roles
    # and the next grant there decides on the policy as it now stands, at once
    bob = _user(led, acme, "bob@example.org")
    assert led.grant_role(bob, "consultant", actor=ADMIN)
    with pytest.raises(Conflict, match="no-admin-consultants"):
        led.grant_role(bob, "admin", actor=ADMIN)


def test_a_rejection_on_the_known_absent_policy_is_decided_again_on_fresh_state(
    led: Ledger, other: Ledger, acme: UUID
) -> None:
    ann = _user(led, acme)
    assert led.grant_role(ann, "consultant", actor=ADMIN)  # led: no policy
    other.define_sod_rule("four-eyes", ["consultant", "admin"], actor=ADMIN)
    assert led.remove_sod_rule("four-eyes", actor=ADMIN)  # NotFound on the known absence
    assert led.grant_role(ann, "admin", actor=ADMIN)


def test_a_policy_this_ledger_creates_is_no_longer_taken_as_absent(led: Ledger, acme: UUID) -> None:
    ann = _user(led, acme)
    assert led.grant_role(ann, "consultant", actor=ADMIN)  # led: no policy
    led.define_sod_rule("four-eyes", ["consultant", "admin"], actor=ADMIN)
    looked_up = _counting_gets(led)
    with pytest.raises(Conflict, match="four-eyes"):
        led.grant_role(ann, "admin", actor=ADMIN)
    assert looked_up == []  # the policy is in the cache now: no look-up, no stale absence
