"""The read side names users and accounts by the one rule of ledger/references.py:
`ReadModel.resolve_user` (id or email) and `ReadModel.resolve_account` (id, or the name of an
open account, else of a closed one)."""

from __future__ import annotations

import uuid

from ledger import Ledger
from projections import ReadModel
from projections.queries import NOBODY
from tests.conftest import ADMIN


def test_accounts_by_id_or_name(led: Ledger, rm: ReadModel, acme: uuid.UUID) -> None:
    gone = led.create_account("Gone BV", actor=ADMIN)
    led.close_account(gone, actor=ADMIN)
    rm.catch_up()
    assert rm.resolve_account(acme) == acme
    assert rm.resolve_account(str(acme)) == acme
    assert rm.resolve_account(" Acme ") == acme
    assert rm.resolve_account("Gone BV") == gone  # closed: still named in questions of the past
    assert rm.resolve_account("Nobody BV") is None
    unknown = uuid.uuid4()
    assert rm.resolve_account(str(unknown)) == unknown  # an id is taken as given


def test_an_open_account_wins_over_a_closed_one_of_the_same_name(
    led: Ledger, rm: ReadModel
) -> None:
    old = led.create_account("Acme", actor=ADMIN)
    led.close_account(old, actor=ADMIN)
    new = led.create_account("Acme", actor=ADMIN)
    rm.catch_up()
    assert rm.resolve_account("Acme") == new


def test_users_by_id_or_email(led: Ledger, rm: ReadModel, acme: uuid.UUID) -> None:
    ann = led.create_user("ann@acme.org", account_id=acme, actor=ADMIN)
    rm.catch_up()
    assert rm.resolve_user("ANN@acme.org") == rm.resolve_user(str(ann)) == ann
    assert rm.resolve_user("nobody@acme.org") == NOBODY
    # the audit log of a user named by email: the same rule
    assert list(rm.audit_log("ann@acme.org")["aggregate_id"]) == list(
        rm.audit_log(ann)["aggregate_id"]
    )
    assert rm.audit_log("nobody@acme.org").empty
