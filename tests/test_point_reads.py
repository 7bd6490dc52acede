"""The read API's point reads (one user, one account, a user's role ends, the projected
position) by prepared statements give exactly what the general queries give, on the demo's
log: erased, deactivated and moved users, closed accounts, time-limited grants."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import UUID

import pytest
from sqlalchemy import select

from ledger.demo import record_demo
from projections import ReadModel, held
from projections import tables as t
from projections.queries import NOBODY


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


def test_position_as_the_projector_reads_it(demo: ReadModel) -> None:
    with demo.engine.connect() as conn:
        assert demo.position() == demo.projector.position(conn) > 0
