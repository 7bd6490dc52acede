"""`has_role(at=)` and its kin at the exact instants of the events: a grant holds from its
event's instant on, a revoke or deactivation ends it at its instant (the interval is closed at
its start and open at its end), one microsecond either side included."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID

import pytest

from ledger import Ledger
from projections import ReadModel
from tests.conftest import ADMIN

US = timedelta(microseconds=1)
CREATED = datetime(2026, 3, 1, 9, 0, 0, 250_001, tzinfo=UTC)
GRANTED = datetime(2026, 3, 2, 9, 0, 0, 123_457, tzinfo=UTC)
DEACTIVATED = datetime(2026, 3, 3, 9, 0, 0, 999_999, tzinfo=UTC)
REACTIVATED = datetime(2026, 3, 4, 9, 0, 1, tzinfo=UTC)
REVOKED = datetime(2026, 3, 5, 9, 0, 0, 7, tzinfo=UTC)
ACCOUNT_GRANTED = datetime(2026, 3, 6, 9, 0, 0, 500_000, tzinfo=UTC)
ACCOUNT_REVOKED = datetime(2026, 3, 7, 9, 0, 0, 500_001, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def history(url: str) -> Iterator[tuple[ReadModel, UUID, UUID]]:
    """Ann: created, granted admin, deactivated, reactivated, admin revoked; her account
    granted and revoked Consultancy; each at an instant with microseconds."""
    clock = Clock()
    led = Ledger(url, clock=clock)
    try:
        led.define_role("admin", actor=ADMIN)
        led.define_account_role("Consultancy", actor=ADMIN)
        acme = led.create_account("Acme", actor=ADMIN)
        clock.now = CREATED
        ann = led.create_user("ann@example.org", account_id=acme, actor=ADMIN)
        steps: list[tuple[datetime, Callable[[], object]]] = [
            (GRANTED, lambda: led.grant_role(ann, "admin", actor=ADMIN)),
            (DEACTIVATED, lambda: led.deactivate_user(ann, actor=ADMIN)),
            (REACTIVATED, lambda: led.reactivate_user(ann, actor=ADMIN)),
            (REVOKED, lambda: led.revoke_role(ann, "admin", actor=ADMIN)),
            (ACCOUNT_GRANTED, lambda: led.grant_account_role(acme, "Consultancy", actor=ADMIN)),
            (ACCOUNT_REVOKED, lambda: led.revoke_account_role(acme, "Consultancy", actor=ADMIN)),
        ]
        for moment, step in steps:
            clock.now = moment
            assert step() is True
    finally:
        led.close()
    rm = ReadModel(url)
    try:
        rm.catch_up()
        yield rm, ann, acme
    finally:
        rm.close()


# (instant, holds admin effectively, holds admin regardless of activity, active)
ANN_AT = [
    (CREATED - US, False, False, False),
    (CREATED, False, False, True),
    (GRANTED - US, False, False, True),
    (GRANTED, True, True, True),
    (GRANTED + US, True, True, True),
    (DEACTIVATED - US, True, True, True),
    (DEACTIVATED, False, True, False),
    (DEACTIVATED + US, False, True, False),
    (REACTIVATED - US, False, True, False),
    (REACTIVATED, True, True, True),
    (REACTIVATED + US, True, True, True),
    (REVOKED - US, True, True, True),
    (REVOKED, False, False, True),
    (REVOKED + US, False, False, True),
]


ACME_AT = [
    (ACCOUNT_GRANTED - US, False),
    (ACCOUNT_GRANTED, True),
    (ACCOUNT_GRANTED + US, True),
    (ACCOUNT_REVOKED - US, True),
    (ACCOUNT_REVOKED, False),
    (ACCOUNT_REVOKED + US, False),
]
PLUS_TWO = timezone(timedelta(hours=2))


def test_a_users_role_and_activity_at_the_instants_of_its_events(
    history: tuple[ReadModel, UUID, UUID],
) -> None:
    rm, ann, _ = history
    wrong = []
    for at, effective, held, active in ANN_AT:
        answers = {
            "has_role": rm.has_role(ann, "admin", at=at),
            "has_role, at given at +02:00": rm.has_role(ann, "admin", at=at.astimezone(PLUS_TWO)),
            "roles": rm.roles(ann, at=at) == {"admin"},
            "users_with_role": [u.id for u in rm.users_with_role("admin", at=at)] == [ann],
            "roles(effective=False)": rm.roles(ann, at=at, effective=False) == {"admin"},
            "is_active": rm.is_active(ann, at=at),
        }
        for question, answer in answers.items():
            right = (
                active if question == "is_active" else held if "False" in question else effective
            )
            if answer is not right:
                wrong.append(f"{question} at {at.isoformat()}: {answer}, expected {right}")
    assert not wrong, "\n".join(wrong)


def test_an_accounts_role_at_the_instants_of_its_events(
    history: tuple[ReadModel, UUID, UUID],
) -> None:
    rm, _, acme = history
    got = [(at, rm.account_has_role(acme, "Consultancy", at=at)) for at, _ in ACME_AT]
    assert got == ACME_AT


ENDS = datetime(2026, 3, 8, 9, 0, 0, 654_321, tzinfo=UTC)


class Frozen(datetime):
    """`datetime` whose `now` is `Frozen.instant`: the clock of "now" in projections.held."""

    instant = ENDS

    @classmethod
    def now(cls, tz: object = None) -> Frozen:  # type: ignore[override]
        i = cls.instant
        return cls(i.year, i.month, i.day, i.hour, i.minute, i.second, i.microsecond, UTC)


@pytest.mark.parametrize("at", [None, "given"], ids=["now", "at"])
def test_a_grant_ends_at_its_until_exactly_now_and_at_that_instant(
    url: str, monkeypatch: pytest.MonkeyPatch, at: str | None
) -> None:
    """ "Now" is the time of the query: a grant is held up to its `until`, not at it."""
    clock = Clock()
    led = Ledger(url, clock=clock)
    rm = ReadModel(url)
    monkeypatch.setattr("projections.held.datetime", Frozen)
    try:
        led.define_role("consultant", actor=ADMIN)
        led.define_account_role("Consultancy", actor=ADMIN)
        acme = led.create_account("Acme", actor=ADMIN)
        ann = led.create_user("ann@acme.org", account_id=acme, actor=ADMIN)
        led.grant_role(ann, "consultant", actor=ADMIN, until=ENDS)
        led.grant_account_role(acme, "Consultancy", actor=ADMIN, until=ENDS)
        rm.catch_up()
        for moment, held in ((ENDS - US, True), (ENDS, False), (ENDS + US, False)):
            monkeypatch.setattr(Frozen, "instant", moment)
            when = None if at is None else moment
            assert rm.has_role(ann, "consultant", at=when) is held, moment
            assert ("consultant" in rm.roles(ann, at=when)) is held, moment
            assert rm.account_has_role(acme, "Consultancy", at=when) is held, moment
            holders = [u.id for u in rm.users_with_role("consultant", at=when)]
            assert holders == ([ann] if held else []), moment
    finally:
        rm.close()
        led.close()
