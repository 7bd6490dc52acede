"""eventsourcing's built-in SQLite and PostgreSQL recorders, extended to write the side tables
(claims, command ids, keys, credentials) in the same transaction as the events."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresFactory
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteFactory
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed

from ledger.storage import side_tables
from ledger.storage.side_tables import SideWrite

_CREATE_TABLES_LOCK = 7_350_001  # pg_advisory_lock key: one process creates tables at a time


class SideTableRecorder(Protocol):
    """What the ledger needs from a recorder beyond eventsourcing's interface."""

    def write_side(self, writes: Sequence[SideWrite]) -> None: ...

    def select_one(self, sql: str, params: tuple[Any, ...]) -> dict[str, Any] | None: ...


class LedgerSQLiteRecorder(SQLiteApplicationRecorder):
    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(), *side_tables.DDL]

    def _insert_events(
        self,
        c: SQLiteCursor,
        stored_events: Sequence[StoredEvent],
        *,
        side_writes: Iterable[SideWrite] = (),
        **kwargs: Any,
    ) -> Sequence[int] | None:
        notification_ids = super()._insert_events(c, stored_events, **kwargs)
        for write in side_writes:
            c.execute(write.sql, write.params)
        return notification_ids

    def write_side(self, writes: Sequence[SideWrite]) -> None:
        self.insert_events([], side_writes=writes)

    def select_one(self, sql: str, params: tuple[Any, ...]) -> dict[str, Any] | None:
        with self.datastore.transaction(commit=False) as c:
            c.execute(sql, params)
            row = c.fetchone()
        return None if row is None else dict(row)


class LedgerSQLiteFactory(SQLiteFactory):
    application_recorder_class = LedgerSQLiteRecorder


def _pg(sql: str) -> str:
    return sql.replace("?", "%s")


class LedgerPostgresRecorder(PostgresApplicationRecorder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sql_create_statements.extend(Composed([SQL(ddl)]) for ddl in side_tables.DDL)

    def create_table(self) -> None:
        with self.datastore.get_connection() as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (_CREATE_TABLES_LOCK,))
            try:
                super().create_table()
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (_CREATE_TABLES_LOCK,))

    def _insert_events(
        self,
        curs: Cursor[DictRow],
        stored_events: Sequence[StoredEvent],
        *,
        side_writes: Iterable[SideWrite] = (),
        **kwargs: Any,
    ) -> None:
        # Runs before the events INSERT and its table lock, in the same transaction.
        for write in side_writes:
            curs.execute(_pg(write.sql), write.params)  # type: ignore[arg-type]

    def write_side(self, writes: Sequence[SideWrite]) -> None:
        self.insert_events([], side_writes=writes)

    def select_one(self, sql: str, params: tuple[Any, ...]) -> dict[str, Any] | None:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(_pg(sql), params)  # type: ignore[arg-type]
            row = curs.fetchone()
        return None if row is None else dict(row)


class LedgerPostgresFactory(PostgresFactory):
    application_recorder_class = LedgerPostgresRecorder
