""" "Held now" reads the open rows only: role grants not revoked, activity periods not ended,
through partial indexes of those rows (at 100,000 users, a `has_role` now without them read
every grant the user ever had of the role from the table). The queries must keep a shape the
database can match to those indexes, and the indexes must cover exactly the open rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

from sqlalchemy import text

from ledger import Ledger
from projections import ReadModel, queries
from tests.conftest import ADMIN

OPEN_INDEXES = {
    "role_grants_open_by_user": "revoked_at IS NULL",
    "user_activity_open_by_user": "active_to IS NULL",
}


def plan(rm: ReadModel, statement: object, values: dict[str, object]) -> str:
    """The query plan of a prepared statement for these values (SQLite or PostgreSQL)."""
    query = rm.reader.prepared(statement)  # type: ignore[arg-type]
    parameters = query.parameters(values)
    with rm.engine.connect() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        cursor = raw.cursor()
        if conn.dialect.name == "sqlite":
            cursor.execute(f"EXPLAIN QUERY PLAN {query.sql}", parameters)
            return "\n".join(str(row[3]) for row in cursor.fetchall())
        # a few rows: the planner would scan the tables whatever the indexes
        cursor.execute("SET enable_seqscan = off")
        cursor.execute(f"EXPLAIN {query.sql}", parameters)
        found = "\n".join(str(row[0]) for row in cursor.fetchall())
        cursor.execute("RESET enable_seqscan")
        return found


def test_held_now_reads_the_open_rows_through_their_indexes(
    rm: ReadModel, led: Ledger, acme: UUID
) -> None:
    user = led.create_user("ann@acme.org", account_id=acme, actor=ADMIN)
    rm.catch_up()
    for statement in (queries._HAS_ROLE_NOW, queries._ROLES[(True, True)]):
        found = plan(rm, statement, {"u": user, "r": "consultant"})
        for index in OPEN_INDEXES:
            assert index in found, found


def test_the_open_indexes_hold_the_open_rows_only(
    url: str, rm: ReadModel, led: Ledger, acme: UUID
) -> None:
    user = led.create_user("bob@acme.org", account_id=acme, actor=ADMIN)
    later = datetime.now(UTC) + timedelta(days=30)
    led.grant_role(user, "consultant", actor=ADMIN, until=later)
    led.grant_role(user, "admin-reader", actor=ADMIN)
    led.revoke_role(user, "admin-reader", actor=ADMIN)
    led.deactivate_user(user, actor=ADMIN)
    led.reactivate_user(user, actor=ADMIN)
    rm.catch_up()
    assert rm.has_role(user, "consultant")
    assert not rm.has_role(user, "admin-reader")
    assert rm.roles(user) == {"consultant"}
    with rm.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            definitions = dict(
                conn.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'index'")).all()
            )
        else:
            definitions = dict(
                conn.execute(text("SELECT indexname, indexdef FROM pg_indexes")).all()
            )
    for index, condition in OPEN_INDEXES.items():
        assert condition in str(definitions[index]).replace("(", "").replace(")", ""), url
