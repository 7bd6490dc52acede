"""The projector's queued writes (`projections.page_writer`): the same read models as writing
each statement in turn, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.types.json import Json
from sqlalchemy import select

from ledger import Ledger
from projections import ReadModel
from projections import page_writer as page_writer_module
from projections import projector as p
from projections import tables as t
from projections.page_writer import PageWriter, WriteStatements
from projections.prepared import PreparedQuery
from tests.conftest import ADMIN
from tests.readmodel_dump import dump
from tests.test_projector import record_history

USERS = [uuid4() for _ in range(3)]
ROLES = ["admin", "viewer"]
START = datetime(2026, 1, 1, tzinfo=UTC)

op = st.tuples(
    st.sampled_from(["grant", "revoke", "extend", "activate", "deactivate"]),
    st.integers(0, len(USERS) - 1),
    st.sampled_from(ROLES),
    st.booleans(),  # whether the write says which rows it touches
)


def _write(writer: PageWriter, n: int, kind: str, user: UUID, role: str, keyed: bool) -> None:
    at = START + timedelta(minutes=n)
    grant_key = (user, role) if keyed else None
    user_key = user if keyed else None
    if kind == "grant":
        values = {"user_id": user, "role": role, "granted_at": at, "revoked_at": None}
        writer.execute(p._INSERT_ROLE_GRANT, {**values, "ends_at": None}, grant_key)
    elif kind == "revoke":
        writer.execute(p._REVOKE_ROLE, {"b_id": user, "b_role": role, "b_at": at}, grant_key)
    elif kind == "extend":
        writer.execute(p._MOVE_ROLE_END, {"b_id": user, "b_role": role, "b_at": at}, grant_key)
    elif kind == "activate":
        values = {"user_id": user, "active_from": at, "active_to": None}
        writer.execute(p._INSERT_ACTIVITY, values, user_key)
    else:
        writer.execute(p._CLOSE_ACTIVITY, {"b_id": user, "b_at": at}, user_key)


def _written(rm: ReadModel, ops: list[tuple[str, int, str, bool]], *, queued: bool) -> Any:
    """The rows the writes leave (in insertion order, ids left out: PostgreSQL's sequences
    move on after a rollback), rolled back afterwards."""
    with rm._writer.connect() as conn:
        transaction = conn.begin()
        with PageWriter(conn, WriteStatements(conn.dialect)) as writer:
            for n, (kind, user, role, keyed) in enumerate(ops):
                _write(writer, n, kind, USERS[user], role, keyed)
                if not queued:
                    writer.send()
        grants, activity = t.role_grants, t.user_activity
        found = (
            [tuple(row)[1:] for row in conn.execute(select(grants).order_by(grants.c.id))],
            [tuple(row)[1:] for row in conn.execute(select(activity).order_by(activity.c.id))],
        )
        transaction.rollback()
    return found


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=st.lists(op, max_size=30))
def test_queued_writes_leave_what_writing_each_in_turn_leaves(
    rm: ReadModel, ops: list[tuple[str, int, str, bool]]
) -> None:
    assert _written(rm, ops, queued=True) == _written(rm, ops, queued=False)


@pytest.fixture
def checked_binders(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[PreparedQuery]]:
    """Every generated binder checked against `PreparedQuery.parameters` on each call."""
    seen: list[PreparedQuery] = []
    generate = page_writer_module.binder

    def checked(query: PreparedQuery) -> page_writer_module.Binder:
        seen.append(query)
        fast = generate(query)

        def bind(values: Any) -> Any:
            bound = fast(values)
            assert _comparable(bound) == _comparable(query.parameters(values)), query.sql
            return bound

        return bind

    monkeypatch.setattr(page_writer_module, "binder", checked)
    yield seen


def _comparable(parameters: Any) -> Any:
    """psycopg's JSON wrappers compare by identity: their contents instead."""
    if isinstance(parameters, dict):
        return {name: _comparable(value) for name, value in parameters.items()}
    if isinstance(parameters, list):
        return [_comparable(value) for value in parameters]
    if isinstance(parameters, Json):
        return ("json", parameters.obj)
    return parameters


def varied_history(led: Ledger, acme: UUID) -> None:
    record_history(led, acme, users=4, logins=8)
    user = led.create_user("zed@acme.org", account_id=acme, actor=ADMIN, roles=["consultant"])
    led.deactivate_user(user, actor=ADMIN)
    led.reactivate_user(user, actor=ADMIN)
    led.grant_account_role(acme, "Consultancy", actor=ADMIN)
    for n, hours in enumerate([3, 1, 5, 2, 4]):  # the account's longest: 5 h
        led.add_annotation(
            acme,
            content=f"note {n}",
            start=START + timedelta(hours=n),
            end=START + timedelta(hours=n + hours),
            source="monitoring",
            actor=ADMIN,
        )
    led.revoke_account_role(acme, "Consultancy", actor=ADMIN)
    led.erase_user(user, actor=ADMIN, reason="asked")


def test_generated_binders_bind_as_the_prepared_queries_do(
    led: Ledger, acme: UUID, rm: ReadModel, checked_binders: list[PreparedQuery]
) -> None:
    varied_history(led, acme)
    small = ReadModel(led.url, page_size=7)
    try:
        small.catch_up()
    finally:
        small.close()
    assert len(checked_binders) >= 8  # one per statement the log needed


def test_small_pages_leave_what_large_pages_leave(led: Ledger, acme: UUID, rm: ReadModel) -> None:
    varied_history(led, acme)
    events = int(led.recorder.max_notification_id())
    rm.catch_up()
    expected = dump(rm)
    small = ReadModel(led.url, page_size=3)  # writes queued and sent per page of 3
    try:
        assert small.rebuild() == events
        assert dump(small) == expected
    finally:
        small.close()


def test_rows_sent_many_at_once_leave_what_rows_sent_one_by_one_leave(
    led: Ledger, acme: UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite: a run of a plain INSERT goes as statements of many rows and a remainder."""
    varied_history(led, acme)
    dumps = []
    for variables in (1, 40, 999):  # a row a statement; 4 audit rows and a rest; the default
        monkeypatch.setattr(page_writer_module, "_SQLITE_VARIABLES", variables)
        rm = ReadModel(led.url, page_size=50)
        try:
            rm.rebuild()
            dumps.append(dump(rm))
        finally:
            rm.close()
    assert dumps[1] == dumps[0] and dumps[2] == dumps[0]
