"""Holding, as the read model projects it: a revocation or deactivation ends exactly the one
grant or period it names (not another holder's, not another role's) at exactly its instant.
Found by mutation testing (scripts/mutation.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ledger import Ledger
from ledger.audit import reports
from projections import ReadModel
from tests.conftest import ADMIN

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TICK = timedelta(microseconds=1)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def at(self, days: int) -> datetime:
        self.now = T0 + timedelta(days=days)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def timed(url: str, clock: Clock) -> Ledger:
    led = Ledger(url, clock=clock)
    for role in ("admin", "consultant"):
        led.define_role(role, actor=ADMIN)
    for role in ("Consultancy", "Partner"):
        led.define_account_role(role, actor=ADMIN)
    return led


@pytest.mark.parametrize("url", ["sqlite"], indirect=True)
def test_revoking_an_account_role_ends_that_grant_only_at_its_instant(
    timed: Ledger, rm: ReadModel, clock: Clock
) -> None:
    seita = timed.create_account("Seita", actor=ADMIN, roles=["Consultancy", "Partner"])
    acme = timed.create_account("Acme", actor=ADMIN, roles=["Consultancy"])
    revoked = clock.at(3)
    assert timed.revoke_account_role(seita, "Consultancy", actor=ADMIN)
    rm.catch_up()
    assert not rm.account_has_role(seita, "Consultancy")
    assert not rm.account_has_role(seita, "Consultancy", at=revoked)
    assert rm.account_has_role(seita, "Consultancy", at=revoked - TICK)
    assert rm.account_has_role(seita, "Consultancy", at=T0)  # from the grant's instant
    assert not rm.account_has_role(seita, "Consultancy", at=T0 - TICK)
    assert rm.account_has_role(seita, "Partner")  # its other role stays
    assert rm.account_has_role(acme, "Consultancy")  # another holder's grant stays


@pytest.mark.parametrize("url", ["sqlite"], indirect=True)
def test_revoking_a_role_ends_that_users_grant_only_at_its_instant(
    timed: Ledger, rm: ReadModel, clock: Clock
) -> None:
    acme = timed.create_account("Acme", actor=ADMIN)
    ann = timed.create_user("ann@acme.org", account_id=acme, actor=ADMIN, roles=["admin"])
    bob = timed.create_user("bob@acme.org", account_id=acme, actor=ADMIN, roles=["admin"])
    timed.grant_role(ann, "consultant", actor=ADMIN)
    revoked = clock.at(10)
    assert timed.revoke_role(ann, "admin", actor=ADMIN)
    rm.catch_up()
    assert rm.roles(ann) == {"consultant"}
    assert rm.roles(bob) == {"admin"}
    assert rm.roles(ann, at=revoked) == {"consultant"}
    assert rm.roles(ann, at=revoked - TICK) == {"admin", "consultant"}
    assert [u.id for u in rm.users_with_role("admin")] == [bob]
    assert {u.id for u in rm.users_with_role("admin", at=revoked - TICK)} == {ann, bob}
    assert [u.id for u in rm.users_with_role("admin", at=revoked)] == [bob]
    assert not rm.users_with_role("admin", at=T0 - TICK)


@pytest.mark.parametrize("url", ["sqlite"], indirect=True)
def test_deactivating_a_user_ends_their_period_only_at_its_instant(
    timed: Ledger, rm: ReadModel, clock: Clock
) -> None:
    acme = timed.create_account("Acme", actor=ADMIN)
    ann = timed.create_user("ann@acme.org", account_id=acme, actor=ADMIN, roles=["admin"])
    bob = timed.create_user("bob@acme.org", account_id=acme, actor=ADMIN, roles=["admin"])
    left = clock.at(5)
    timed.deactivate_user(ann, actor=ADMIN)
    back = clock.at(8)
    timed.reactivate_user(ann, actor=ADMIN)
    rm.catch_up()
    assert rm.is_active(ann) and rm.is_active(bob)
    assert not rm.is_active(ann, at=left) and rm.is_active(ann, at=left - TICK)
    assert rm.is_active(ann, at=back) and not rm.is_active(ann, at=back - TICK)
    assert rm.is_active(bob, at=left) and rm.has_role(bob, "admin", at=left)
    assert not rm.has_role(ann, "admin", at=left) and rm.has_role(ann, "admin", at=back)
    assert rm.roles(ann, at=left) == set() and rm.roles(ann, at=left, effective=False) == {"admin"}
    assert [u.id for u in rm.users_with_role("admin", at=left)] == [bob]
    assert {u.id for u in rm.users_with_role("admin")} == {ann, bob}
    user = rm.get_user(ann)
    assert user is not None and user.active  # the reactivation sets the flag back
    assert {u.id for u in rm.list_users(acme)} == {ann, bob}


@pytest.mark.parametrize("url", ["sqlite"], indirect=True)
def test_the_reports_hold_a_role_from_its_grant_until_its_revocation(
    timed: Ledger, rm: ReadModel, clock: Clock
) -> None:
    acme = timed.create_account("Acme", actor=ADMIN)
    granted = clock.at(1)
    ann = timed.create_user("ann@acme.org", account_id=acme, actor=ADMIN, roles=["admin"])
    revoked = clock.at(10)
    timed.revoke_role(ann, "admin", actor=ADMIN)
    rm.catch_up()

    def holders(at: datetime) -> list[object]:
        return list(reports.privileged_holders(rm, at=at)["user_id"])

    def held(at: datetime) -> list[object]:
        return list(reports.access_review(rm, at=at)["roles"])

    assert holders(granted - TICK) == [] and held(granted - TICK) == []
    assert holders(granted) == [ann] and held(granted) == ["admin"]
    assert holders(revoked - TICK) == [ann] and held(revoked - TICK) == ["admin"]
    assert holders(revoked) == [] and held(revoked) == [""]


@pytest.mark.parametrize("url", ["sqlite"], indirect=True)
def test_the_timeline_holds_a_role_from_its_grant_until_its_revocation_clipped_to_the_window(
    timed: Ledger, rm: ReadModel, clock: Clock
) -> None:
    acme = timed.create_account("Acme", actor=ADMIN)
    granted = clock.at(1)
    ann = timed.create_user("ann@acme.org", account_id=acme, actor=ADMIN, roles=["admin"])
    revoked = clock.at(10)
    timed.revoke_role(ann, "admin", actor=ADMIN)
    rm.catch_up()

    def timeline(since: int, until: int) -> list[tuple[object, ...]]:
        frame = reports.privileged_timeline(
            rm, T0 + timedelta(days=since), T0 + timedelta(days=until)
        )
        return [(r.user_id, r.role, r.start, r.end) for r in frame.itertuples()]

    assert timeline(0, 20) == [(ann, "admin", granted, revoked)]
    assert timeline(5, 8) == [(ann, "admin", T0 + timedelta(days=5), T0 + timedelta(days=8))]
    assert timeline(0, 1) == [] and timeline(10, 20) == []
