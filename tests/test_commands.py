"""The commands of SPEC §4 as a story: what each records, returns, and refuses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from ledger import Conflict, InactiveUser, Ledger, NotFound, ValidationError
from ledger.domain import Account, User
from tests.conftest import ADMIN
from tests.helpers import event_names, stored_state

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def user(led: Ledger, user_id: UUID) -> User:
    aggregate = led.repository.get(user_id)
    assert isinstance(aggregate, User)
    return aggregate


def account(led: Ledger, account_id: UUID) -> Account:
    aggregate = led.repository.get(account_id)
    assert isinstance(aggregate, Account)
    return aggregate


def test_a_fresh_ledger_defines_no_roles(led: Ledger) -> None:
    assert led.recorder.max_notification_id() in (None, 0)
    acc = led.create_account("Acme", actor=ADMIN)
    ann = led.create_user("ann@example.org", account_id=acc, actor=ADMIN)
    with pytest.raises(NotFound, match="role 'admin' is not defined"):
        led.grant_role(ann, "admin", actor=ADMIN)


def test_roles_are_defined_once_per_catalogue(led: Ledger) -> None:
    assert led.define_role("admin", "Platform administrator", actor=ADMIN) is True
    with pytest.raises(Conflict, match="role 'admin' is already defined"):
        led.define_role("admin", actor=ADMIN)
    # The account catalogue is separate, and names are case-sensitive and trimmed.
    assert led.define_account_role("admin", actor=ADMIN) is True
    assert led.define_role("Admin", actor=ADMIN) is True
    with pytest.raises(Conflict):
        led.define_role("  admin ", actor=ADMIN)


def test_create_user_records_identity_roles_and_membership(led: Ledger, acme: UUID) -> None:
    ann = led.create_user(
        "Ann.Smith@Example.ORG",
        account_id=acme,
        actor=ADMIN,
        roles=["account-admin"],
        timezone="UTC",
        reason="onboarding",
    )
    state = user(led, ann)
    assert state.email == "Ann.Smith@example.org"
    assert state.username == "Ann.Smith"
    assert state.timezone == "UTC"
    assert state.active and state.roles == {"account-admin"}
    assert state.login_count == 0 and state.last_login_at is None
    assert state.created_at is not None and state.created_at.tzinfo is not None
    assert ann in account(led, acme).members
    assert event_names(led)[-3:] == ["UserCreated", "RoleGranted", "UserJoined"]


def test_default_username_falls_back_to_the_whole_email(led: Ledger, acme: UUID) -> None:
    first = led.create_user("ann@one.org", account_id=acme, actor=ADMIN)
    second = led.create_user("ann@two.org", account_id=acme, actor=ADMIN)
    assert user(led, first).username == "ann"
    assert user(led, second).username == "ann@two.org"
    with pytest.raises(Conflict, match="username 'ann' is already taken"):
        led.create_user("bob@one.org", account_id=acme, actor=ADMIN, username="ann")


def test_grant_and_revoke_return_whether_anything_changed(led: Ledger, acme: UUID) -> None:
    ann = led.create_user("ann@example.org", account_id=acme, actor=ADMIN)
    assert led.grant_role(ann, "admin", actor=ADMIN, reason="JIRA-1") is True
    before = stored_state(led)
    assert led.grant_role(ann, "admin", actor=ADMIN) is False
    assert stored_state(led) == before
    assert led.revoke_role(ann, "admin", actor=ADMIN) is True
    assert led.revoke_role(ann, "admin", actor=ADMIN) is False
    assert user(led, ann).roles == set()


def test_roles_may_be_given_as_role_models(led: Ledger, acme: UUID) -> None:
    class RoleModel:
        name = "consultant"

    ann = led.create_user("ann@example.org", account_id=acme, actor=ADMIN)
    assert led.grant_role(ann, RoleModel(), actor=ADMIN) is True
    assert led.grant_account_role(acme, type("M", (), {"name": "Consultancy"})(), actor=ADMIN)
    assert user(led, ann).roles == {"consultant"}


def test_deactivate_and_reactivate(led: Ledger, acme: UUID) -> None:
    ann = led.create_user("ann@example.org", account_id=acme, actor=ADMIN)
    assert led.deactivate_user(ann, actor=ADMIN, reason="left") is True
    assert led.deactivate_user(ann, actor=ADMIN) is False
    assert not user(led, ann).active
    with pytest.raises(InactiveUser, match=r"ann@example\.org"):
        led.record_login(ann)
    assert led.reactivate_user(ann, actor=ADMIN) is True
    assert led.reactivate_user(ann, actor=ADMIN) is False
    assert user(led, ann).active


def test_logins_and_last_seen(led: Ledger, acme: UUID, monkeypatch: pytest.MonkeyPatch) -> None:
    ann = led.create_user("ann@example.org", account_id=acme, actor=ADMIN)
    assert led.record_login(ann, at=T0, ip="192.0.2.7") is True
    led.record_login(ann, at=T0 + timedelta(days=1))
    state = user(led, ann)
    assert state.login_count == 2
    assert state.last_login_at == T0 + timedelta(days=1)

    assert led.record_last_seen(ann, at=T0) is True
    before = stored_state(led)
    assert led.record_last_seen(ann, at=T0 + timedelta(seconds=299)) is False
    assert stored_state(led) == before
    assert led.record_last_seen(ann, at=T0 + timedelta(seconds=300)) is True
    assert user(led, ann).last_seen_at == T0 + timedelta(seconds=300)


def test_last_seen_resolution_is_a_setting(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGER_LAST_SEEN_RESOLUTION", "10")
    led = Ledger(url)
    try:
        acc = led.create_account("Acme", actor=ADMIN)
        ann = led.create_user("ann@example.org", account_id=acc, actor=ADMIN)
        assert led.record_last_seen(ann, at=T0)
        assert not led.record_last_seen(ann, at=T0 + timedelta(seconds=9))
        assert led.record_last_seen(ann, at=T0 + timedelta(seconds=10))
    finally:
        led.close()


def test_logins_are_recorded_with_the_user_as_actor(led: Ledger, acme: UUID) -> None:
    ann = led.create_user("ann@example.org", account_id=acme, actor=ADMIN)
    led.record_login(ann)
    last = led.recorder.select_notifications(start=None, limit=1_000_000)[-1]
    event = led.mapper.to_domain_event(last)
    assert event.actor == str(ann)  # type: ignore[attr-defined]


def test_update_user_moves_the_uniqueness_claims(led: Ledger, acme: UUID) -> None:
    ann = led.create_user("ann@example.org", account_id=acme, actor=ADMIN)
    bob = led.create_user("bob@example.org", account_id=acme, actor=ADMIN)
    assert led.update_user(ann, actor=ADMIN, email="ann@new.org", username="annie") is True
    assert led.update_user(ann, actor=ADMIN, email="ann@new.org") is False
    assert led.update_user(ann, actor=ADMIN, timezone="Asia/Tokyo") is True
    state = user(led, ann)
    assert (state.email, state.username, state.timezone) == ("ann@new.org", "annie", "Asia/Tokyo")
    # The old values are free again; the new ones are taken.
    led.update_user(bob, actor=ADMIN, email="ANN@example.org", username="ann")
    with pytest.raises(Conflict, match=r"'Ann@new\.org' is already taken"):
        led.update_user(bob, actor=ADMIN, email="Ann@New.org")
    assert led.user_id_for_email("ann@NEW.org") == ann
    assert led.user_id_for_email("ann@example.org") == bob


def test_an_email_change_in_case_only_keeps_the_claim(led: Ledger, acme: UUID) -> None:
    ann = led.create_user("ann@example.org", account_id=acme, actor=ADMIN)
    assert led.update_user(ann, actor=ADMIN, email="Ann@example.org") is True
    assert user(led, ann).email == "Ann@example.org"
    assert led.user_id_for_email("ANN@EXAMPLE.ORG") == ann


def test_passwords_live_outside_the_log(led: Ledger, acme: UUID) -> None:
    ann = led.create_user("ann@example.org", account_id=acme, actor=ADMIN, password="s3cret!")
    assert led.verify_password(ann, "s3cret!")
    assert not led.verify_password(ann, "wrong")
    assert led.set_password(ann, "n3w-secret", actor=str(ann)) is True
    assert led.verify_password(ann, "n3w-secret") and not led.verify_password(ann, "s3cret!")
    assert event_names(led).count("PasswordChanged") == 2
    for notification in led.recorder.select_notifications(start=None, limit=1_000_000):
        assert b"s3cret" not in notification.state and b"argon2" not in notification.state


def test_accounts_create_update_and_roles(led: Ledger, acme: UUID) -> None:
    client = led.create_account(
        "Client BV",
        actor=ADMIN,
        roles=["Consultancy"],
        consultancy_account_id=acme,
        primary_color="#112233",
        secondary_color="#445566",
        logo_url="https://client.example/logo.png",
    )
    state = account(led, client)
    assert state.roles == {"Consultancy"} and state.consultancy_account_id == acme
    assert (
        led.update_account(client, actor=ADMIN, name="Client B.V.", primary_color="#000000") is True
    )
    assert led.update_account(client, actor=ADMIN, name="Client B.V.") is False
    assert led.update_account(client, actor=ADMIN, primary_color=None, secondary_color=None)
    state = account(led, client)
    assert (state.name, state.primary_color, state.secondary_color) == ("Client B.V.", None, None)
    assert led.account_id_for_name("Client B.V.") == client
    assert led.account_id_for_name("Client BV") is None
    assert led.revoke_account_role(client, "Consultancy", actor=ADMIN) is True
    assert led.revoke_account_role(client, "Consultancy", actor=ADMIN) is False
    assert led.grant_account_role(client, "Consultancy", actor=ADMIN) is True
    assert led.grant_account_role(client, "Consultancy", actor=ADMIN) is False


def test_account_names_are_unique_among_open_accounts(led: Ledger, acme: UUID) -> None:
    with pytest.raises(Conflict, match="'Acme'"):
        led.create_account(" Acme ", actor=ADMIN)
    led.close_account(acme, actor=ADMIN)
    reopened = led.create_account("Acme", actor=ADMIN)
    assert reopened != acme


def test_consultancy_set_and_cleared(led: Ledger, acme: UUID) -> None:
    client = led.create_account("Client", actor=ADMIN)
    assert led.set_consultancy(client, acme, actor=ADMIN) is True
    assert led.set_consultancy(client, acme, actor=ADMIN) is False
    assert led.set_consultancy(client, None, actor=ADMIN) is True
    assert account(led, client).consultancy_account_id is None


def test_closing_an_account_deactivates_members_and_drops_roles(led: Ledger, acme: UUID) -> None:
    led.grant_account_role(acme, "Consultancy", actor=ADMIN)
    ann = led.create_user("ann@example.org", account_id=acme, actor=ADMIN, roles=["admin"])
    bob = led.create_user("bob@example.org", account_id=acme, actor=ADMIN)
    led.deactivate_user(bob, actor=ADMIN)
    before = len(event_names(led))
    assert led.close_account(acme, actor=ADMIN, reason="contract ended") is True
    names = event_names(led)[before:]
    assert sorted(names) == ["AccountClosed", "AccountRoleRevoked", "UserDeactivated"]
    assert not user(led, ann).active and user(led, ann).roles == {"admin"}
    state = account(led, acme)
    assert state.closed and state.roles == set()
    deactivation = [
        led.mapper.to_domain_event(n)
        for n in led.recorder.select_notifications(start=None, limit=1_000_000)
    ][-3:]
    reasons = {type(e).__name__: e.reason for e in deactivation}  # type: ignore[attr-defined]
    assert reasons["UserDeactivated"] == "account closed"
    assert reasons["AccountClosed"] == "contract ended"
    # A closed account accepts no further commands (closing again changes nothing).
    assert led.close_account(acme, actor=ADMIN) is False
    for command in (
        lambda: led.update_account(acme, actor=ADMIN, name="Other"),
        lambda: led.grant_account_role(acme, "Consultancy", actor=ADMIN),
        lambda: led.create_user("new@example.org", account_id=acme, actor=ADMIN),
        lambda: led.reactivate_user(ann, actor=ADMIN),
        lambda: led.add_annotation(
            acme, content="x", start=T0, end=T0 + timedelta(hours=1), source="s", actor=ADMIN
        ),
    ):
        before_state = stored_state(led)
        with pytest.raises(Conflict, match="closed"):
            command()
        assert stored_state(led) == before_state


def test_annotations_are_deduplicated_and_removable(led: Ledger, acme: UUID) -> None:
    ann = led.create_user("ann@example.org", account_id=acme, actor=ADMIN)
    fields = dict(
        content="Office closed",
        start=T0,
        end=T0 + timedelta(days=1),
        source="calendar",
        type="holiday",
        actor=ADMIN,
    )
    first = led.add_annotation(acme, **fields)
    before = stored_state(led)
    assert led.add_annotation(acme, **fields) == first
    assert stored_state(led) == before
    by_user = led.add_annotation(acme, **{**fields, "source": ann})
    believed = led.add_annotation(acme, **{**fields, "belief_time": T0})
    assert len({first, by_user, believed}) == 3
    assert led.remove_annotation(acme, first, actor=ADMIN) is True
    assert led.remove_annotation(acme, first, actor=ADMIN) is False
    # Once removed, the same annotation can be added again, as a new one.
    again = led.add_annotation(acme, **fields)
    assert again != first
    with pytest.raises(NotFound):
        led.remove_annotation(acme, ann, actor=ADMIN)


def test_erasure_keeps_history_but_not_personal_data(led: Ledger, acme: UUID) -> None:
    ann = led.create_user(
        "ann@example.org", account_id=acme, actor=ADMIN, roles=["admin"], password="pw"
    )
    led.record_login(ann, ip="198.51.100.1")
    assert led.erase_user(ann, actor=ADMIN, reason="GDPR request 17") is True
    assert led.erase_user(ann, actor=ADMIN, reason="again") is False
    state = user(led, ann)
    assert (state.email, state.username) == ("[erased]", "[erased]")
    assert state.roles == {"admin"} and not state.active and state.login_count == 1
    assert not led.verify_password(ann, "pw")
    assert led.user_id_for_email("ann@example.org") is None
    # The email and username are free again.
    led.create_user("ann@example.org", account_id=acme, actor=ADMIN)
    with pytest.raises(Conflict, match="erased"):
        led.grant_role(ann, "consultant", actor=ADMIN)
    # A fresh process (no caches) sees the same.
    other = Ledger(led.url)
    try:
        events = [
            other.mapper.to_domain_event(n)
            for n in other.recorder.select_notifications(start=None, limit=1_000_000)
        ]
        logins = [e for e in events if type(e).__name__ == "LoginRecorded"]
        assert logins[0].ip == "[erased]"  # type: ignore[attr-defined]
        assert other.repository.get(ann).email == "[erased]"
    finally:
        other.close()


def test_personal_data_is_encrypted_at_rest(led: Ledger, acme: UUID) -> None:
    ann = led.create_user("ann.private@example.org", account_id=acme, actor=ADMIN)
    led.record_login(ann, ip="203.0.113.99")
    for notification in led.recorder.select_notifications(start=None, limit=1_000_000):
        assert b"ann.private" not in notification.state
        assert b"203.0.113.99" not in notification.state
    claims = led.side.select_one(
        "SELECT COUNT(*) AS n FROM ledger_claims WHERE key LIKE ?", ("%ann%",)
    )
    assert claims is not None and claims["n"] == 0


def test_many_events_decode_with_one_key_query(led: Ledger, acme: UUID) -> None:
    """A page of user creations (the projector's, a batch's) looks its keys up together; an
    erased user's data still reads as erased."""
    emails = [f"user{n}@example.org" for n in range(7)]
    users = [led.create_user(email, account_id=acme, actor=ADMIN) for email in emails]
    led.erase_user(users[3], actor=ADMIN, reason="GDPR request 18")
    other = Ledger(led.url)  # nothing cached
    single, bulk = other._keyring._lookup_key, other._keyring._lookup_keys
    one_by_one: list[str] = []
    together: list[list[str]] = []
    other._keyring._lookup_key = lambda key_id: one_by_one.append(key_id) or single(key_id)
    other._keyring._lookup_keys = lambda ids: together.append(ids) or bulk(ids)
    try:
        stored = other.recorder.select_notifications(start=None, limit=1_000)
        events = other.to_domain_events(stored)
        shown = [e.email for e in events if isinstance(e, User.UserCreated)]
        assert shown == [*emails[:3], "[erased]", *emails[4:]]
        assert one_by_one == [] and len(together) == 1 and len(together[0]) == 7
    finally:
        other.close()


def test_a_clock_supplies_event_timestamps(url: str) -> None:
    moments = iter([T0, T0 + timedelta(days=30)])
    led = Ledger(url, clock=lambda: next(moments))
    try:
        acc = led.create_account("Acme", actor=ADMIN)
        led.update_account(acc, actor=ADMIN, name="Acme Inc")
        stamps = [
            led.mapper.to_domain_event(n).timestamp
            for n in led.recorder.select_notifications(start=None, limit=10)
        ]
        assert stamps == [T0, T0 + timedelta(days=30)]
    finally:
        led.close()


def test_a_user_is_found_by_any_spelling_of_the_email(led: Ledger, acme: UUID) -> None:
    ann = led.create_user("Ann.Lee@Example.org", account_id=acme, actor=ADMIN)
    anne = led.create_user("anne@bücher.example", account_id=acme, actor=ADMIN)
    for spelling in ("Ann.Lee@Example.org", " ann.lee@EXAMPLE.ORG ", "ANN.LEE@example.org"):
        assert led.user_id_for_email(spelling) == ann
    # found through validation: the normal form differs from the ASCII text given
    assert led.user_id_for_email("anne@xn--bcher-kva.example") == anne
    assert led.user_id_for_email("ANNE@BÜCHER.EXAMPLE") == anne
    assert led.user_id_for_email("nobody@example.org") is None
    for bad in ("not-an-email", "ann.lee@", '"ann.lee"@example.org', ""):
        with pytest.raises(ValidationError, match="invalid email"):
            led.user_id_for_email(bad)


@pytest.mark.parametrize("setting", ["abc", "0", "-5", "1.5"])
def test_a_cache_size_that_is_not_a_positive_number_is_rejected(
    url: str, monkeypatch: pytest.MonkeyPatch, setting: str
) -> None:
    monkeypatch.setenv("LEDGER_AGGREGATE_CACHE_MAXSIZE", setting)
    with pytest.raises(ValidationError, match="LEDGER_AGGREGATE_CACHE_MAXSIZE must be a whole"):
        Ledger(url)


def test_the_cache_size_is_a_setting(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGER_AGGREGATE_CACHE_MAXSIZE", " 50000 ")
    led = Ledger(url)
    try:
        assert led.repository.cache.maxsize == 50_000  # type: ignore[union-attr]
    finally:
        led.close()
    monkeypatch.delenv("LEDGER_AGGREGATE_CACHE_MAXSIZE")
    led = Ledger(url)
    try:
        assert led.repository.cache.maxsize == 10_000  # type: ignore[union-attr]
    finally:
        led.close()
