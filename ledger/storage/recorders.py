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

from ledger.storage import chain, side_tables
from ledger.storage.side_tables import SideWrite

_CREATE_TABLES_LOCK = 7_350_001  # pg_advisory_lock key: one process creates tables at a time


class SideTableRecorder(Protocol):
    """What the ledger needs from a recorder beyond eventsourcing's interface."""

    def write_side(self, writes: Sequence[SideWrite]) -> None: ...

    def select_one(self, sql: str, params: tuple[Any, ...]) -> dict[str, Any] | None: ...

    def select_all(self, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]: ...


class LedgerSQLiteRecorder(SQLiteApplicationRecorder):
    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(), *side_tables.DDL, chain.DDL]

    def _insert_events(
        self,
        c: SQLiteCursor,
        stored_events: Sequence[StoredEvent],
        *,
        side_writes: Iterable[SideWrite] = (),
        **kwargs: Any,
    ) -> Sequence[int] | None:
        notification_ids = super()._insert_events(c, stored_events, **kwargs)
        if notification_ids:
            # The write lock is held from the first INSERT: no one else can extend the chain.
            c.execute(chain.SELECT_HEAD)
            head = c.fetchone()
            previous = head["hash"] if head else chain.GENESIS
            c.executemany(chain.INSERT, chain.links(previous, notification_ids, stored_events))
        for write in side_writes:
            c.execute(write.sql, write.params)
        return notification_ids

    def write_side(self, writes: Sequence[SideWrite]) -> None:
        self.insert_events([], side_writes=writes)

    def select_one(self, sql: str, params: tuple[Any, ...]) -> dict[str, Any] | None:
        rows = self.select_all(sql, params)
        return rows[0] if rows else None

    def select_all(self, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(sql, params)
            return [dict(row) for row in c.fetchall()]


class LedgerSQLiteFactory(SQLiteFactory):
    application_recorder_class = LedgerSQLiteRecorder


def _pg(sql: str) -> str:
    return sql.replace("?", "%s")


class LedgerPostgresRecorder(PostgresApplicationRecorder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sql_create_statements.extend(
            Composed([SQL(ddl)]) for ddl in (*side_tables.DDL, chain.DDL)
        )

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

    def _fetch_ids_after_insert_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        notification_ids = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        if not notification_ids:
            return notification_ids
        # The table lock is held and the ids are known: extend the chain. eventsourcing commits
        # even when Python raises here, so a failure must abort the transaction in the database.
        curs.execute(chain.SELECT_HEAD)
        head = curs.fetchone()
        try:
            rows = chain.links(
                head["hash"] if head else chain.GENESIS, notification_ids, stored_events
            )
        except BaseException:
            curs.execute("SELECT ledger_chain_link_failed()")  # no such function: aborts
            raise
        curs.executemany(_pg(chain.INSERT), rows)  # type: ignore[arg-type]
        return notification_ids

    def write_side(self, writes: Sequence[SideWrite]) -> None:
        self.insert_events([], side_writes=writes)

    def select_one(self, sql: str, params: tuple[Any, ...]) -> dict[str, Any] | None:
        rows = self.select_all(sql, params)
        return rows[0] if rows else None

    def select_all(self, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(_pg(sql), params)  # type: ignore[arg-type]
            return [dict(row) for row in curs.fetchall()]


class LedgerPostgresFactory(PostgresFactory):
    application_recorder_class = LedgerPostgresRecorder
