"""The indexes of the period tables (role grants, activity): on SQLite a "held now" read finds
its answer in the index alone; on PostgreSQL the periods' ends stay out of the index (setting
one keeps its update a HOT update); a read model of the previous shape is rebuilt, not read."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from uuid import UUID

import pytest
from sqlalchemy import event, text

from ledger import Ledger
from ledger.storage.settings import StorageError
from projections import ReadModel
from projections.read_model import SCHEMA_ROW
from tests.conftest import ADMIN

KEYS = {
    "role_grants_by_user": ["user_id", "role", "granted_at"],
    "user_activity_by_user": ["user_id", "active_from"],
}
ENDS = {"role_grants_by_user": ["revoked_at", "ends_at"], "user_activity_by_user": ["active_to"]}
TABLES = {"role_grants_by_user": "role_grants", "user_activity_by_user": "user_activity"}


@pytest.fixture
def history(led: Ledger, acme: UUID) -> tuple[UUID, UUID]:
    """Ann holds admin (after a revocation and a grant again); Bob was deactivated."""
    ann = led.create_user("ann@acme.org", account_id=acme, actor=ADMIN, roles=["admin"])
    led.revoke_role(ann, "admin", actor=ADMIN)
    led.grant_role(ann, "admin", actor=ADMIN, until=datetime(9999, 1, 1, tzinfo=UTC))
    bob = led.create_user("bob@acme.org", account_id=acme, actor=ADMIN, roles=["consultant"])
    led.deactivate_user(bob, actor=ADMIN)
    return ann, bob


def expected_columns(url: str) -> dict[str, list[str]]:
    return {name: KEYS[name] + (ENDS[name] if url.startswith("sqlite") else []) for name in KEYS}


def index_columns(url: str, rm: ReadModel) -> dict[str, list[str]]:
    with rm.engine.connect() as conn:
        if url.startswith("sqlite"):
            return {
                name: [row[2] for row in conn.execute(text(f"PRAGMA index_info({name})"))]
                for name in KEYS
            }
        found = conn.execute(
            text(
                "SELECT i.relname, a.attname FROM pg_index x "
                "JOIN pg_class i ON i.oid = x.indexrelid "
                "JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = ANY(x.indkey) "
                "WHERE i.relname IN ('role_grants_by_user', 'user_activity_by_user') "
                "ORDER BY i.relname, array_position(x.indkey, a.attnum)"
            )
        ).all()
        columns: dict[str, list[str]] = {}
        for name, column in found:
            columns.setdefault(name, []).append(column)
        return columns


def answers(rm: ReadModel, ann: UUID, bob: UUID) -> tuple[object, ...]:
    return (
        rm.has_role(ann, "admin"),
        rm.roles(ann),
        rm.is_active(ann),
        rm.has_role(bob, "consultant"),
        rm.roles(bob, effective=False),
        rm.is_active(bob),
    )


EXPECTED = (True, {"admin"}, True, False, {"consultant"}, False)


@pytest.fixture
def traced(url: str, led: Ledger) -> Iterator[tuple[ReadModel, list[str]]]:
    """A read model whose SQLite connections report each statement they run, values bound."""
    model = ReadModel(url)
    statements: list[str] = []
    event.listen(
        model.engine,
        "connect",
        lambda connection, _record: connection.set_trace_callback(statements.append),
    )
    try:
        yield model, statements
    finally:
        model.close()


@pytest.mark.parametrize("url", ["sqlite"], indirect=True)  # traced by the sqlite3 driver
def test_held_now_reads_never_touch_the_tables_on_sqlite(
    traced: tuple[ReadModel, list[str]], history: tuple[UUID, UUID]
) -> None:
    rm, statements = traced
    rm.catch_up()
    statements.clear()
    assert answers(rm, *history) == EXPECTED
    reads = [sql for sql in statements if "role_grants" in sql or "user_activity" in sql]
    assert len(reads) >= 6
    with rm.engine.connect() as conn:
        for sql in reads:
            plan = [row[3] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")]
            searches = [step for step in plan if "role_grants" in step or "user_activity" in step]
            assert searches, plan
            for step in searches:
                assert "USING COVERING INDEX role_grants_by_user" in step or (
                    "USING COVERING INDEX user_activity_by_user" in step
                ), (sql, plan)


def test_the_period_indexes_hold_the_ends_on_sqlite_only(
    url: str, rm: ReadModel, history: tuple[UUID, UUID]
) -> None:
    rm.catch_up()
    assert index_columns(url, rm) == expected_columns(url)
    assert answers(rm, *history) == EXPECTED


def test_a_read_model_of_the_previous_shape_is_rebuilt_not_read(
    url: str, led: Ledger, history: tuple[UUID, UUID]
) -> None:
    rm = ReadModel(url)
    try:
        rm.catch_up()
        with rm.engine.begin() as conn:  # as version 7 left it: the ends not in the indexes
            for name, key in KEYS.items():
                conn.execute(text(f"DROP INDEX {name}"))
                conn.execute(text(f"CREATE INDEX {name} ON {TABLES[name]} ({', '.join(key)})"))
            conn.execute(
                text("UPDATE projection_tracking SET position = 7 WHERE name = :row"),
                {"row": SCHEMA_ROW},
            )
    finally:
        rm.close()
    with pytest.raises(StorageError, match="from another version of the ledger"):
        ReadModel(url, read_only=True)
    rm = ReadModel(url)
    try:
        rm.catch_up()
        assert answers(rm, *history) == EXPECTED
        assert index_columns(url, rm) == expected_columns(url)
    finally:
        rm.close()
