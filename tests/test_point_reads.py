"""The read API's point reads (one user, one account, a user's role ends, the projected
position) by prepared statements give exactly what the general queries give, on the demo's
log: erased, deactivated and moved users, closed accounts, time-limited grants."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from sqlalchemy import select

from ledger import Ledger
from ledger.demo import record_demo
from projections import ReadModel, held
from projections import tables as t
from projections.queries import NOBODY
from tests.conftest import ADMIN


@pytest.fixture
def demo(url: str) -> Iterator[ReadModel]:
    record_demo(url)
    model = ReadModel(url)
    try:
        model.catch_up()
        yield model
    finally:
        model.close()


def test_get_user_and_account_as_the_general_queries_answer(demo: ReadModel) -> None:
    users = demo.list_users(include_inactive=True)
    assert len(users) > 20 and any(u.erased for u in users) and any(not u.active for u in users)
    for user in users:
        assert demo.get_user(user.id) == user
        assert demo.get_user(user.id) == demo._users(t.users.c.id == user.id)[0]
    accounts = demo.list_accounts(include_closed=True)
    assert any(a.closed for a in accounts) and any(a.account_roles for a in accounts)
    for account in accounts:
        assert demo.get_account(account.id) == account
        assert demo.get_account(str(account.id)) == account
    assert demo.get_user(NOBODY) is None
    assert demo.get_user(UUID(int=7)) is None
    assert demo.get_account(UUID(int=7)) is None


def test_role_ends_now_as_the_general_query_answers(demo: ReadModel) -> None:
    grants = t.role_grants.c
    with demo.engine.connect() as conn:
        with_ends = set(conn.execute(select(grants.user_id).where(grants.ends_at.is_not(None))))
    assert with_ends  # the demo has time-limited grants
    for user in demo.list_users(include_inactive=True):
        expected = demo._ends(
            select(grants.role, grants.ends_at).where(
                held.grants_held(user.id, None), grants.ends_at.is_not(None)
            )
        )
        assert demo.role_ends(user.id) == expected


def test_a_user_and_role_ends_read_together_as_read_apart(
    led: Ledger, acme: UUID, rm: ReadModel
) -> None:
    soon, later = (datetime.now(UTC) + timedelta(days=days) for days in (1, 2))
    ann = led.create_user("ann@acme.org", account_id=acme, actor=ADMIN)
    for role, until in (("consultant", later), ("admin", soon), ("account-admin", None)):
        led.grant_role(ann, role, actor=ADMIN, until=until)
    bob = led.create_user("bob@acme.org", account_id=acme, actor=ADMIN)
    led.grant_role(bob, "admin", actor=ADMIN, until=soon)
    led.revoke_role(bob, "admin", actor=ADMIN)
    led.grant_role(bob, "admin", actor=ADMIN, until=later)
    rm.catch_up()
    for user in (ann, bob, led.create_user("cy@acme.org", account_id=acme, actor=ADMIN)):
        rm.catch_up()
        found = rm.get_user_and_role_ends(user)
        assert found is not None
        assert found[0] == rm._users(t.users.c.id == user)[0]
        # the same entries in the same order: the read API answers them as a JSON object
        assert list(found[1].items()) == sorted(rm.role_ends(user).items())
    assert rm.get_user_and_role_ends(ann)[1] == {"admin": soon, "consultant": later}  # type: ignore[index]
    assert rm.get_user_and_role_ends(UUID(int=7)) is None


def test_position_as_the_projector_reads_it(demo: ReadModel) -> None:
    with demo.engine.connect() as conn:
        assert demo.position() == demo.projector.position(conn) > 0
