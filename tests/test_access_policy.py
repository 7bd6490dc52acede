"""The access rules themselves (ledger/access_policy.py), as pure functions over plain facts:
each rule of reads and writes at its edges, without a database."""

from __future__ import annotations

import dataclasses
from uuid import UUID, uuid4

import pytest

from ledger import access_policy as rules
from ledger.access_policy import Caller, TargetUser, Tenant

CONSULTANCY, CLIENT, OTHER = UUID(int=1), UUID(int=2), UUID(int=3)
client = Tenant(CLIENT, CONSULTANCY)
other = Tenant(OTHER, None)


def caller(account: UUID, *roles: str, active: bool = True) -> Caller:
    return Caller(uuid4(), account, frozenset(roles), active)


def target(tenant: Tenant, *roles: str) -> TargetUser:
    return TargetUser(uuid4(), tenant, frozenset(roles))


def test_an_inactive_callers_roles_count_for_nothing() -> None:
    gone = caller(CLIENT, "admin", "account-admin", active=False)
    assert gone.effective_roles == frozenset()
    assert not rules.reads_all(gone)
    assert not rules.is_account_admin_of(gone, client)
    for kind in ("catalogue", "user-activity", "user-profile", "annotation"):
        verdict = rules.may_write(gone, kind, tenant=client)
        assert (verdict.allowed, verdict.rule) == (False, "inactive-caller")


def test_reads() -> None:
    reader = caller(OTHER, "admin-reader")
    assert rules.reads_all(reader) and rules.can_read_account(reader, client)
    assert rules.audit_logs_readable(reader, [client]) is None
    member = caller(CLIENT)
    assert rules.can_read_account(member, client) and not rules.can_read_account(member, other)
    assert not rules.can_read_account_audit_log(member, client)
    assert rules.audit_logs_readable(member, [client, other]) == frozenset()
    own_user = member.user_id
    assert rules.can_read_user_audit_log(member, own_user, client)
    assert not rules.can_read_user_audit_log(member, uuid4(), client)
    assert rules.can_read_user(caller(OTHER), own_user, client) is False
    consultant = caller(CONSULTANCY, "consultant")
    assert rules.is_consultant_of(consultant, client)
    assert not rules.is_consultant_of(consultant, other)  # no consultancy at all
    assert not rules.is_consultant_of(caller(CONSULTANCY), client)  # not a consultant
    assert rules.audit_logs_readable(consultant, [client, other]) == frozenset({CLIENT})
    admin_of_client = caller(CLIENT, "account-admin")
    assert rules.can_read_account_audit_log(admin_of_client, client)
    assert not rules.can_read_account_audit_log(admin_of_client, other)
    # another consultancy's client is not this consultant's
    assert not rules.is_consultant_of(consultant, Tenant(uuid4(), uuid4()))
    # users: of one's own account, and oneself wherever
    assert rules.can_read_user(member, uuid4(), client)
    assert not rules.can_read_user(member, uuid4(), other)
    assert rules.can_read_user(member, own_user, other)
    # a user's audit log: readers of all, the account's admins and consultants, the user
    someone = uuid4()
    assert rules.can_read_user_audit_log(reader, someone, client)
    assert rules.can_read_user_audit_log(admin_of_client, someone, client)
    assert rules.can_read_user_audit_log(consultant, someone, client)
    assert not rules.can_read_user_audit_log(admin_of_client, someone, other)
    assert not rules.can_read_user_audit_log(consultant, someone, other)
    assert rules.can_read_account_audit_log(consultant, client)
    assert rules.can_read_account_audit_log(reader, other)


@pytest.mark.parametrize("kind", sorted(rules.ADMIN_ONLY_KINDS))
def test_admin_only_kinds(kind: rules.Kind) -> None:
    assert rules.may_write(caller(OTHER, "admin"), kind, tenant=client).allowed
    for roles in (("admin-reader",), ("account-admin",), ("consultant",)):
        for account in (CLIENT, CONSULTANCY):
            verdict = rules.may_write(caller(account, *roles), kind, tenant=client)
            assert (verdict.allowed, verdict.rule) == (False, "admin-only")


def test_nobody_changes_their_own_roles_or_active_flag() -> None:
    for roles in (("admin",), ("account-admin",)):
        me = caller(CLIENT, *roles)
        myself = TargetUser(me.user_id, client, me.roles)
        for kind in ("user-role", "user-status", "user-erase"):
            verdict = rules.may_write(me, kind, target=myself)
            assert (verdict.allowed, verdict.rule) == (False, "self")
        for kind in ("user-profile", "user-password"):
            assert rules.may_write(me, kind, target=myself).allowed
        assert rules.may_write(me, "user-activity", target=myself).rule in ("own-activity", "admin")


def test_activity_is_recorded_by_the_user_or_an_admin() -> None:
    someone = target(client)
    verdict = rules.may_write(caller(CLIENT, "account-admin"), "user-activity", target=someone)
    assert (verdict.allowed, verdict.rule) == (False, "self-only")
    assert rules.may_write(caller(OTHER, "admin"), "user-activity", target=someone).allowed


def test_account_managers_and_their_limits() -> None:
    for manager in (caller(CLIENT, "account-admin"), caller(CONSULTANCY, "consultant")):
        verdict = rules.may_write(manager, "user-role", target=target(client), roles=["viewer"])
        assert (verdict.allowed, verdict.rule) == (True, "account-manager")
        for role in ("admin", "admin-reader", "consultant"):
            verdict = rules.may_write(manager, "user-role", target=target(client), roles=[role])
            assert (verdict.allowed, verdict.rule) == (False, "admin-granted-role")
        verdict = rules.may_write(manager, "user-create", tenant=client, roles=["consultant"])
        assert verdict.rule == "admin-granted-role"
        assert rules.may_write(manager, "user-create", tenant=client).allowed
        for held in ("admin", "admin-reader", "consultant"):  # each reads beyond one account
            verdict = rules.may_write(manager, "user-status", target=target(client, held))
            assert (verdict.allowed, verdict.rule) == (False, "privileged-target")
        assert rules.may_write(manager, "user-status", target=target(client, "viewer")).allowed
        verdict = rules.may_write(manager, "user-status", target=target(other))
        assert (verdict.allowed, verdict.rule) == (False, "not-account-manager")
    verdict = rules.may_write(caller(CLIENT, "consultant"), "user-status", target=target(client))
    assert verdict.rule == "not-account-manager"  # a consultant of their own account manages none
    verdict = rules.may_write(caller(CLIENT), "user-profile", target=target(client))
    assert verdict.rule == "not-account-manager"


def test_annotations_by_members_and_consultants() -> None:
    assert rules.may_write(caller(CLIENT), "annotation", tenant=client).rule == "account-member"
    consultant = caller(CONSULTANCY, "consultant")
    assert rules.may_write(consultant, "annotation", tenant=client).allowed
    verdict = rules.may_write(caller(CONSULTANCY), "annotation", tenant=client)
    assert (verdict.allowed, verdict.rule) == (False, "not-account-member")
    assert not rules.may_write(caller(OTHER, "admin-reader"), "annotation", tenant=client).allowed


def test_without_a_target_only_an_admin_may() -> None:
    verdict = rules.may_write(caller(CLIENT, "account-admin"), "user-role")
    assert (verdict.allowed, verdict.rule) == (False, "admin-only")


def test_every_rule_reads_as_a_sentence() -> None:
    for name, why in rules.RULES.items():
        assert why and "\n" not in why and name == name.strip()


def test_a_review_decision_is_the_named_reviewers_own() -> None:
    reviewer = caller(OTHER)
    assert rules.may_write(reviewer, "review-decision", reviewer=reviewer.user_id).allowed
    admin = caller(OTHER, "admin")
    verdict = rules.may_write(admin, "review-decision", reviewer=reviewer.user_id)
    assert (verdict.allowed, verdict.rule) == (False, "not-reviewer")
    gone = caller(OTHER, active=False)
    verdict = rules.may_write(gone, "review-decision", reviewer=gone.user_id)
    assert (verdict.allowed, verdict.rule) == (False, "inactive-caller")
    for kind in ("review-campaign",):
        assert not rules.may_write(reviewer, kind).allowed
        assert rules.may_write(admin, kind).allowed


def test_ids_are_compared_by_value_not_identity() -> None:
    """The facts come from different loads: equal ids are distinct objects."""
    reviewer = caller(OTHER)
    same_reviewer = UUID(str(reviewer.user_id))
    assert rules.may_write(reviewer, "review-decision", reviewer=same_reviewer).allowed
    member = Caller(uuid4(), UUID(str(CLIENT)), frozenset())
    assert rules.may_write(member, "annotation", tenant=client).allowed


def test_only_an_admin_grants_with_an_approved_exception() -> None:
    for manager in (caller(CLIENT, "account-admin"), caller(CONSULTANCY, "consultant")):
        verdict = rules.may_write(manager, "user-role", target=target(client), exception=True)
        assert (verdict.allowed, verdict.rule) == (False, "admin-exception")
        assert rules.may_write(manager, "user-role", target=target(client)).allowed
    assert rules.may_write(
        caller(OTHER, "admin"), "user-role", target=target(client), exception=True
    )


def test_the_facts_of_a_decision_cannot_change_after_it() -> None:
    """Value objects: hashable, and frozen so a decision cannot be made on one state and
    acted on another."""
    facts = [caller(CLIENT), client, target(client), rules.may_write(caller(CLIENT), "catalogue")]
    for fact in facts:
        assert hash(fact) == hash(fact)
        with pytest.raises(dataclasses.FrozenInstanceError):
            fact.__setattr__(dataclasses.fields(fact)[0].name, None)
