"""Event titles (ledger/domain/titles.py): every event class of the domain has one, and each
names only fields its event has, so a renamed or added event or field breaks here."""

from __future__ import annotations

import string

import pytest
from eventsourcing.domain import Aggregate

from ledger.domain import Account, LedgerAggregate, User, titles


def _aggregates(base: type[LedgerAggregate] = LedgerAggregate) -> list[type[LedgerAggregate]]:
    found = []
    for aggregate in base.__subclasses__():
        found += [aggregate, *_aggregates(aggregate)]
    return found


def domain_events() -> list[type[Aggregate.Event]]:
    """Every event class an aggregate of the domain declares (as finalised by eventsourcing)."""
    return [
        event
        for aggregate in _aggregates()
        for attribute, event in vars(aggregate).items()
        if isinstance(event, type)
        and issubclass(event, Aggregate.Event)
        and attribute not in ("Event", "Created")
    ]


def test_the_domain_is_found() -> None:
    events = domain_events()
    assert User.RoleGranted in events and Account.AccountClosed in events
    assert len(events) >= 22


@pytest.mark.parametrize("event", domain_events(), ids=lambda event: event.__qualname__)
def test_every_event_class_has_a_title(event: type[Aggregate.Event]) -> None:
    assert event in titles.TITLES, f"{event.__qualname__} has no title in ledger/domain/titles.py"


def test_no_title_for_an_event_that_is_gone() -> None:
    assert set(titles.TITLES) <= set(domain_events())


@pytest.mark.parametrize("event", list(titles.TITLES), ids=lambda event: event.__qualname__)
def test_a_title_names_only_fields_of_its_event(event: type[Aggregate.Event]) -> None:
    entry = titles.TITLES[event]
    declared = {name for klass in event.__mro__ for name in vars(klass).get("__annotations__", {})}
    for template in (entry.sentence, entry.detail or ""):
        wanted = {field for _, field, _, _ in string.Formatter().parse(template) if field}
        assert wanted <= declared | {"changed"}, (event.__qualname__, template)


def test_a_title_by_class_event_name_or_topic() -> None:
    assert titles.title(User.RoleGranted, {"role": "admin"}) == "role admin granted"
    assert titles.title("RoleGranted", {"role": "admin"}) == "role admin granted"
    assert titles.title("ledger.domain.users:User.UserErased") == "personal data erased"
    assert titles.detail("RoleRevoked", {"role": "admin"}) == "revoked admin"
    assert titles.detail("UserUpdated", {"timezone": "UTC", "email": None}) == "changed timezone"
    assert titles.detail("AccountClosed") == "account closed"  # no detail: the sentence
    assert titles.title("SomethingOld") == "SomethingOld"  # an event no class defines now
    assert titles.names(User.LoginFailed, Account.AccountCreated) == (
        "LoginFailed",
        "AccountCreated",
    )
    assert titles.by_name({User.RoleGranted: 1}) == {"RoleGranted": 1}
