"""The queries of SPEC §4 with FlexMeasures' semantics, now and at past instants."""

from __future__ import annotations

import random
import warnings
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pandas as pd
import pytest

from ledger import Ledger, ValidationError
from projections import ReadModel, RoleModel, UserModel, is_user
from tests.conftest import ADMIN

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def at(self, days: float) -> datetime:
        self.now = T0 + timedelta(days=days)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def timed(url: str, clock: Clock) -> Ledger:
    """A ledger whose events are stamped by `clock`, with the well-known roles defined."""
    led = Ledger(url, clock=clock)
    for role in ("admin", "admin-reader", "account-admin", "consultant"):
        led.define_role(role, f"The {role} role", actor=ADMIN)
    led.define_account_role("Consultancy", actor=ADMIN)
    return led


def test_has_role_now_and_at_past_instants(timed: Ledger, rm: ReadModel, clock: Clock) -> None:
    acme = timed.create_account("Acme", actor=ADMIN)
    clock.at(1)
    ann = timed.create_user("ann@acme.org", account_id=acme, actor=ADMIN, roles=["admin"])
    clock.at(10)
    timed.revoke_role(ann, "admin", actor=ADMIN)
    clock.at(20)
    timed.grant_role(ann, "admin", actor=ADMIN)
    rm.catch_up()
    assert rm.has_role(ann, "admin")
    assert not rm.has_role(ann, "admin", at=T0)  # before the user existed
    assert rm.has_role(ann, "admin", at=T0 + timedelta(days=1))  # from the instant of the grant
    assert rm.has_role(ann, "admin", at=T0 + timedelta(days=9, hours=23))
    assert not rm.has_role(ann, "admin", at=T0 + timedelta(days=10))  # revoked at that instant
    assert not rm.has_role(ann, "admin", at=T0 + timedelta(days=15))
    assert rm.has_role(ann, "admin", at=T0 + timedelta(days=25))
    assert not rm.has_role(ann, "consultant")


def test_an_inactive_user_has_no_effective_roles(
    timed: Ledger, rm: ReadModel, clock: Clock
) -> None:
    acme = timed.create_account("Acme", actor=ADMIN)
    ann = timed.create_user(
        "ann@acme.org", account_id=acme, actor=ADMIN, roles=["admin", "consultant"]
    )
    clock.at(5)
    timed.deactivate_user(ann, actor=ADMIN, reason="left")
    clock.at(8)
    timed.reactivate_user(ann, actor=ADMIN)
    clock.at(9)
    timed.deactivate_user(ann, actor=ADMIN)
    rm.catch_up()
    assert not rm.has_role(ann, "admin")
    assert rm.roles(ann) == set()
    assert rm.roles(ann, effective=False) == {"admin", "consultant"}
    assert not rm.is_active(ann)
    assert rm.is_active(ann, at=T0 + timedelta(days=4))
    assert not rm.is_active(ann, at=T0 + timedelta(days=6))
    assert rm.roles(ann, at=T0 + timedelta(days=6)) == set()
    assert rm.roles(ann, at=T0 + timedelta(days=6), effective=False) == {"admin", "consultant"}
    assert rm.roles(ann, at=T0 + timedelta(days=8, hours=1)) == {"admin", "consultant"}
    assert rm.users_with_role("admin") == []
    holders = rm.users_with_role("admin", at=T0 + timedelta(days=8, hours=1))
    assert [u.id for u in holders] == [ann]


def test_account_roles_over_time(timed: Ledger, rm: ReadModel, clock: Clock) -> None:
    seita = timed.create_account("Seita", actor=ADMIN, roles=["Consultancy"])
    clock.at(3)
    timed.close_account(seita, actor=ADMIN)
    rm.catch_up()
    assert not rm.account_has_role(seita, "Consultancy")
    assert rm.account_has_role(seita, "Consultancy", at=T0 + timedelta(days=2))
    [model] = rm.list_account_roles()
    assert rm.account_has_role(seita, model, at=T0)


def test_roles_may_be_given_as_models(timed: Ledger, rm: ReadModel) -> None:
    acme = timed.create_account("Acme", actor=ADMIN)
    ann = timed.create_user("ann@acme.org", account_id=acme, actor=ADMIN)
    rm.catch_up()
    catalogue = {role.name: role for role in rm.list_roles()}
    assert catalogue["admin"] == RoleModel(name="admin", description="The admin role")
    timed.grant_role(ann, catalogue["admin"], actor=ADMIN)
    rm.catch_up()
    assert rm.has_role(ann, catalogue["admin"])
    assert [u.id for u in rm.users_with_role(catalogue["admin"])] == [ann]


def test_users_and_accounts_as_models(timed: Ledger, rm: ReadModel, clock: Clock) -> None:
    seita = timed.create_account(
        "Seita",
        actor=ADMIN,
        roles=["Consultancy"],
        primary_color="#010203",
        secondary_color="#040506",
        logo_url="https://seita.example/logo.svg",
    )
    client = timed.create_account("Client", actor=ADMIN, consultancy_account_id=seita)
    ann = timed.create_user(
        "Ann@Client.org",
        account_id=client,
        actor=ADMIN,
        username="ann",
        timezone="UTC",
        roles=["account-admin"],
    )
    bob = timed.create_user("bob@client.org", account_id=client, actor=ADMIN)
    timed.deactivate_user(bob, actor=ADMIN)
    clock.at(2)
    timed.record_login(ann, at=T0 + timedelta(days=2), ip="192.0.2.1")
    timed.record_last_seen(ann, at=T0 + timedelta(days=2, minutes=5))
    rm.catch_up()
    user = rm.get_user(ann)
    assert user is not None and is_user(user)
    assert (user.email, user.username, user.timezone, user.account_id) == (
        "Ann@client.org",
        "ann",
        "UTC",
        client,
    )
    assert user.roles == ["account-admin"] and user.active and user.login_count == 1
    assert user.last_login_at == T0 + timedelta(days=2)
    assert user.last_seen_at == T0 + timedelta(days=2, minutes=5)
    assert user.created_at == T0 and user.created_at.tzinfo is not None
    assert rm.find_user_by_email("ANN@CLIENT.ORG") == user
    assert rm.find_user_by_email("nobody@client.org") is None
    assert rm.get_user(str(ann)) == user and rm.get_user(user) == user
    assert rm.get_user(uuid4()) is None
    assert [u.id for u in rm.list_users(account_id=client)] == [ann]
    assert [u.id for u in rm.list_users(account_id=client, include_inactive=True)] == [ann, bob]
    account = rm.get_account(seita)
    assert account is not None
    assert (account.name, account.primary_color, account.secondary_color, account.logo_url) == (
        "Seita",
        "#010203",
        "#040506",
        "https://seita.example/logo.svg",
    )
    assert account.account_roles == ["Consultancy"] and not account.closed
    assert rm.get_account(client).consultancy_account_id == seita  # type: ignore[union-attr]
    assert [a.name for a in rm.list_accounts()] == ["Client", "Seita"]
    timed.close_account(client, actor=ADMIN)
    timed.update_account(seita, actor=ADMIN, name="Seita BV")
    rm.catch_up()
    assert [a.name for a in rm.list_accounts()] == ["Seita BV"]
    assert [a.name for a in rm.list_accounts(include_closed=True)] == ["Client", "Seita BV"]
    assert rm.get_user(ann).active is False  # type: ignore[union-attr]


def test_is_user_accepts_proxies(timed: Ledger, rm: ReadModel) -> None:
    acme = timed.create_account("Acme", actor=ADMIN)
    ann = timed.create_user("ann@acme.org", account_id=acme, actor=ADMIN)
    rm.catch_up()
    user = rm.get_user(ann)

    class LocalProxy:
        def __init__(self, target: Callable[[], object]) -> None:
            self._target = target

        def _get_current_object(self) -> object:
            return self._target()

    assert is_user(LocalProxy(lambda: user))
    assert not is_user(LocalProxy(lambda: "someone"))
    assert not is_user(ann) and not is_user(None)
    assert rm.has_role(LocalProxy(lambda: user), "admin") is False
    timed.grant_role(LocalProxy(lambda: user), "admin", actor=ADMIN)
    rm.catch_up()
    assert rm.has_role(LocalProxy(lambda: user), "admin") is True


@pytest.fixture
def annotated(timed: Ledger, rm: ReadModel) -> tuple[UUID, UUID, dict[str, UUID]]:
    acme = timed.create_account("Acme", actor=ADMIN)
    ann = timed.create_user("ann@acme.org", account_id=acme, actor=ADMIN)
    day = timedelta(days=1)
    ids = {
        "jan": timed.add_annotation(
            acme,
            content="January",
            start=T0,
            end=T0 + 31 * day,
            source="calendar",
            type="holiday",
            actor=ADMIN,
        ),
        "feb": timed.add_annotation(
            acme,
            content="February",
            start=T0 + 31 * day,
            end=T0 + 59 * day,
            source="calendar",
            actor=ADMIN,
            belief_time=T0 + 20 * day,
        ),
        "alert": timed.add_annotation(
            acme,
            content="Outage",
            start=T0 + 40 * day,
            end=T0 + 41 * day,
            source=ann,
            type="alert",
            actor=ADMIN,
            belief_time=T0 + 40 * day,
        ),
    }
    gone = timed.add_annotation(
        acme, content="Removed", start=T0, end=T0 + day, source="x", actor=ADMIN
    )
    timed.remove_annotation(acme, gone, actor=ADMIN)
    rm.catch_up()
    return acme, ann, ids


def names(found: object) -> list[str]:
    return [a.content for a in found]  # type: ignore[attr-defined]


def test_search_annotations_bounds_are_exclusive(rm: ReadModel, annotated: tuple) -> None:
    acme, _, _ = annotated
    day = timedelta(days=1)
    assert names(rm.search_annotations(acme)) == ["January", "February", "Outage"]
    # annotations_after keeps end > it: January ends exactly at T0+31d.
    assert names(rm.search_annotations(acme, annotations_after=T0 + 31 * day)) == [
        "February",
        "Outage",
    ]
    # annotations_before keeps start < it: February starts exactly at T0+31d.
    assert names(rm.search_annotations(acme, annotations_before=T0 + 31 * day)) == ["January"]
    assert names(
        rm.search_annotations(
            acme, annotations_after=T0 + 35 * day, annotations_before=T0 + 40 * day + 1 * day
        )
    ) == ["February", "Outage"]


def test_a_long_annotation_is_found_from_a_late_window(timed: Ledger, rm: ReadModel) -> None:
    acme = timed.create_account("Acme", actor=ADMIN)
    year = timed.add_annotation(
        acme, content="The year", start=T0, end=T0 + timedelta(days=365), source="plan", actor=ADMIN
    )
    for day in range(40):
        timed.add_annotation(
            acme,
            content=f"day {day}",
            start=T0 + timedelta(days=day),
            end=T0 + timedelta(days=day, hours=1),
            source="log",
            actor=ADMIN,
        )
    rm.catch_up()
    late = rm.search_annotations(acme, annotations_after=T0 + timedelta(days=300))
    assert [a.id for a in late] == [year]  # type: ignore[union-attr]
    window = rm.search_annotations(
        acme, annotations_after=T0 + timedelta(days=10), annotations_before=T0 + timedelta(days=11)
    )
    assert [a.content for a in window] == ["The year", "day 10"]  # type: ignore[union-attr]


def test_search_annotations_belief_filters(rm: ReadModel, annotated: tuple) -> None:
    acme, _, _ = annotated
    day = timedelta(days=1)
    # An annotation without a belief time passes both filters.
    assert names(rm.search_annotations(acme, beliefs_after=T0 + 20 * day)) == ["January", "Outage"]
    assert names(rm.search_annotations(acme, beliefs_before=T0 + 20 * day)) == [
        "January",
        "February",
    ]
    assert names(rm.search_annotations(acme, beliefs_before=T0 + 19 * day)) == ["January"]


def test_search_annotations_sources(rm: ReadModel, annotated: tuple) -> None:
    acme, ann, _ = annotated
    assert names(rm.search_annotations(acme, source="calendar")) == ["January", "February"]
    assert names(rm.search_annotations(acme, source=ann)) == ["Outage"]
    assert names(rm.search_annotations(acme, source=str(ann))) == ["Outage"]
    assert names(rm.search_annotations(acme, source=["calendar", ann])) == [
        "January",
        "February",
        "Outage",
    ]
    assert rm.search_annotations(acme, source="nobody") == []
    assert rm.search_annotations(acme, source=[]) == []


def test_deprecated_aliases_warn_and_lose_to_the_new_names(rm: ReadModel, annotated: tuple) -> None:
    acme, _, _ = annotated
    day = timedelta(days=1)
    with pytest.warns(FutureWarning, match="annotations_after"):
        found = rm.search_annotations(acme, annotation_starts_after=T0 + 31 * day)
    assert names(found) == ["February", "Outage"]
    with pytest.warns(FutureWarning, match="annotations_before"):
        found = rm.search_annotations(acme, annotation_ends_before=T0 + 31 * day)
    assert names(found) == ["January"]
    with pytest.warns(FutureWarning):
        found = rm.search_annotations(
            acme, annotations_after=T0, annotation_starts_after=T0 + 31 * day
        )
    assert names(found) == ["January", "February", "Outage"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rm.search_annotations(acme, annotations_after=T0)


def test_search_annotations_as_frame(rm: ReadModel, annotated: tuple) -> None:
    acme, ann, _ = annotated
    frame = rm.search_annotations(acme, as_frame=True)
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["start", "end", "belief_time", "source", "type", "content"]
    assert list(frame["content"]) == ["January", "February", "Outage"]
    assert list(frame["source"]) == ["calendar", "calendar", ann]
    assert list(frame["type"]) == ["holiday", "label", "alert"]
    empty = rm.search_annotations(acme, source="nobody", as_frame=True)
    assert isinstance(empty, pd.DataFrame) and list(empty.columns) == list(frame.columns)


def test_audit_log_has_one_row_per_domain_event(timed: Ledger, rm: ReadModel, clock: Clock) -> None:
    acme = timed.create_account("Acme", actor=ADMIN)
    clock.at(1)
    ann = timed.create_user("ann@acme.org", account_id=acme, actor=ADMIN, command_id="imp-1")
    clock.at(2)
    timed.grant_role(ann, "admin", actor="cli:alice", reason="JIRA-12")
    timed.grant_role(ann, "admin", actor="cli:alice")  # no-op: no row
    timed.create_user("ann@acme.org", account_id=acme, actor=ADMIN, command_id="imp-1")
    rm.catch_up()
    log = rm.audit_log()
    for column in (
        "position",
        "timestamp",
        "aggregate_id",
        "aggregate_type",
        "event",
        "actor",
        "reason",
    ):
        assert column in log.columns
    assert list(log["position"]) == sorted(log["position"])
    assert len(log) == timed.recorder.max_notification_id()
    user_log = rm.audit_log(ann)
    assert list(user_log["event"]) == ["UserCreated", "RoleGranted"]
    grant = user_log.iloc[1]
    assert (grant["actor"], grant["reason"], grant["role"]) == ("cli:alice", "JIRA-12", "admin")
    assert user_log.iloc[0]["command_id"] == "imp-1"
    assert user_log.iloc[0]["email"] == "ann@acme.org"
    account_log = rm.audit_log(account_id=acme)
    assert list(account_log["event"]) == [
        "AccountCreated",
        "UserCreated",
        "UserJoined",
        "RoleGranted",
    ]
    window = rm.audit_log(since=T0 + timedelta(days=1), until=T0 + timedelta(days=2))
    assert list(window["event"]) == ["UserCreated", "UserJoined"]
    assert rm.audit_log(uuid4()).empty


def test_erased_personal_data_leaves_every_read_model(timed: Ledger, rm: ReadModel) -> None:
    acme = timed.create_account("Acme", actor=ADMIN)
    ann = timed.create_user(
        "ann.secret@acme.org", account_id=acme, actor=ADMIN, username="annsecret"
    )
    timed.update_user(ann, actor=ADMIN, email="ann.other@acme.org")
    timed.record_login(ann, ip="203.0.113.5")
    rm.catch_up()  # the read models hold the data now ...
    assert rm.find_user_by_email("ann.secret@acme.org") is None
    assert rm.find_user_by_email("ann.other@acme.org") is not None
    timed.erase_user(ann, actor=ADMIN, reason="GDPR")
    rm.catch_up()  # ... and not after the erasure
    assert_no_personal_data(rm, ann)
    rm.rebuild()
    assert_no_personal_data(rm, ann)


def assert_no_personal_data(rm: ReadModel, user_id: UUID) -> None:
    user = rm.get_user(user_id)
    assert user is not None and user.erased
    assert (user.email, user.username) == ("[erased]", "[erased]")
    assert rm.find_user_by_email("ann.other@acme.org") is None
    text = rm.audit_log().to_string()
    for secret in ("ann.secret", "ann.other", "annsecret", "203.0.113.5"):
        assert secret not in text
    assert user_id in set(rm.audit_log()["aggregate_id"])  # the history itself stays


def test_queries_reject_naive_datetimes(rm: ReadModel) -> None:
    naive = datetime(2026, 1, 1)
    with pytest.raises(ValidationError, match="naive"):
        rm.has_role(uuid4(), "admin", at=naive)
    with pytest.raises(ValidationError, match="annotations_after"):
        rm.search_annotations(uuid4(), annotations_after=naive)
    with pytest.raises(ValidationError, match="since"):
        rm.audit_log(since=naive)


def test_unknown_ids_answer_no(rm: ReadModel) -> None:
    assert rm.has_role(uuid4(), "admin") is False
    assert rm.roles(uuid4()) == set()
    assert rm.is_active(uuid4()) is False
    assert rm.get_account(uuid4()) is None
    assert rm.search_annotations(uuid4()) == []


def test_user_models_are_pydantic(timed: Ledger, rm: ReadModel) -> None:
    acme = timed.create_account("Acme", actor=ADMIN)
    ann = timed.create_user("ann@acme.org", account_id=acme, actor=ADMIN)
    rm.catch_up()
    user = rm.get_user(ann)
    assert isinstance(user, UserModel)
    assert UserModel.model_validate_json(user.model_dump_json()) == user


def test_search_annotations_matches_a_plain_filter_over_random_windows(
    led: Ledger, acme: UUID, rm: ReadModel
) -> None:
    """Annotations from half a second to ten days long, at sub-second offsets: every window
    finds exactly what a plain filter over all of them finds (the index bound is never too
    tight)."""
    rng = random.Random(7)
    spans: dict[str, tuple[datetime, datetime]] = {}
    for i in range(40):
        start = T0 + timedelta(seconds=rng.uniform(0, 30 * 86400))
        end = start + timedelta(seconds=rng.choice([0.5, 1, 59.9, 3600, 86400, 864000]))
        led.add_annotation(acme, content=f"n{i}", start=start, end=end, source="s", actor=ADMIN)
        spans[f"n{i}"] = (start, end)
    rm.catch_up()
    for _ in range(150):
        after = T0 + timedelta(seconds=rng.uniform(-86400, 31 * 86400))
        before = after + timedelta(seconds=rng.choice([0.25, 1, 600, 86400, 20 * 86400]))
        found = rm.search_annotations(acme, annotations_after=after, annotations_before=before)
        expected = [n for n, (s, e) in spans.items() if e > after and s < before]
        assert sorted(names(found)) == sorted(expected), (after, before)
        ends_after = names(rm.search_annotations(acme, annotations_after=after))
        assert sorted(ends_after) == sorted(n for n, (_, e) in spans.items() if e > after)
    for name, (_, end) in spans.items():  # a millisecond before each end: still found
        found = rm.search_annotations(acme, annotations_after=end - timedelta(milliseconds=1))
        assert name in names(found)
