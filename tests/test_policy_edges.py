"""The access policy's edges that the HTTP matrix does not pin: a caller recognised as
themselves by id (not by being the same object), and a caller whose roles cannot change after
authentication. Found by mutation testing (scripts/mutation.py)."""

from __future__ import annotations

import dataclasses
from uuid import UUID

import pytest

from ledger import Ledger
from projections import ReadModel
from projections.api.policy import Principal, can_read_user, can_read_user_audit_log
from tests.conftest import ADMIN


def principal(rm: ReadModel, user: UUID) -> Principal:
    """The caller as the API builds them: from their own look-up, with their roles now."""
    model = rm.get_user(user)
    assert model is not None
    return Principal(user=model, roles=frozenset(rm.roles(user)))


@pytest.mark.parametrize("url", ["sqlite"], indirect=True)
def test_a_member_without_roles_reads_their_own_audit_log_and_no_colleagues(
    led: Ledger, acme: UUID, rm: ReadModel
) -> None:
    ann = led.create_user("ann@acme.org", account_id=acme, actor=ADMIN)
    bob = led.create_user("bob@acme.org", account_id=acme, actor=ADMIN)
    rm.catch_up()
    me, account = principal(rm, ann), rm.get_account(acme)
    own, colleague = rm.get_user(ann), rm.get_user(bob)
    assert account is not None and own is not None and colleague is not None
    assert own is not me.user and own.id is not me.user.id  # equal ids, separate objects
    assert me.roles == frozenset()
    assert can_read_user_audit_log(me, own, account)
    assert not can_read_user_audit_log(me, colleague, account)
    assert can_read_user(me, own, account) and can_read_user(me, colleague, account)


@pytest.mark.parametrize("url", ["sqlite"], indirect=True)
def test_a_callers_roles_cannot_be_changed_after_authentication(
    led: Ledger, acme: UUID, rm: ReadModel
) -> None:
    ann = led.create_user("ann@acme.org", account_id=acme, actor=ADMIN)
    rm.catch_up()
    me = principal(rm, ann)
    with pytest.raises(dataclasses.FrozenInstanceError):
        me.roles = frozenset({"admin"})  # type: ignore[misc]
    assert not me.reads_all
