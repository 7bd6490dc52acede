"""eventsourcing's built-in SQLite and PostgreSQL recorders, extended to write the side tables
(claims, command ids, keys, credentials) in the same transaction as the events, and to wipe
from the disk what an erasure deleted."""

from __future__ import annotations

import contextlib
import random
import sqlite3
import time
from collections.abc import Iterable, Sequence
from typing import Any, Final, LiteralString, Protocol, cast
from uuid import UUID

from eventsourcing.persistence import (
    IntegrityError,
    InterfaceError,
    OperationalError,
    StoredEvent,
)
from eventsourcing.postgres import (
    PostgresAggregateRecorder,
    PostgresApplicationRecorder,
    PostgresFactory,
)
from eventsourcing.sqlite import (
    SQLITE3_DEFAULT_LOCK_TIMEOUT,
    SQLiteApplicationRecorder,
    SQLiteConnection,
    SQLiteConnectionPool,
    SQLiteCursor,
    SQLiteFactory,
)
from psycopg import Connection, Cursor
from psycopg import Error as DriverError
from psycopg.errors import LockNotAvailable
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composable, Composed, Identifier, Literal

from ledger.errors import LedgerError
from ledger.storage import chain, chain_check, digest_chain, side_tables, stream_cursors
from ledger.storage.side_tables import SideWrite

_CREATE_TABLES_LOCK = 7_350_001  # pg_advisory_lock key: one process creates tables at a time


class SideTableRecorder(Protocol):
    """What the ledger needs from a recorder beyond eventsourcing's interface."""

    def write_side(self, writes: Sequence[SideWrite]) -> None: ...

    def select_one(self, sql: str, params: tuple[Any, ...]) -> dict[str, Any] | None: ...

    def select_all(self, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]: ...

    def select_pairs(self, sql: str, params: tuple[Any, ...]) -> dict[Any, Any]: ...

    def chain_source(self) -> chain_check.Source: ...

    def first_link_without_event(self, start: int | None, stop: int | None) -> int | None: ...

    def events_before(self, position: int) -> tuple[int, int, str] | None: ...

    def events_after(self, positions: Sequence[tuple[UUID, int]]) -> list[StoredEvent]: ...

    def wipe_deleted(self, timeout: float) -> None: ...


class WipeUnfinished(LedgerError):
    """Rows were deleted, but what they held is still on the disk."""


class LedgerSQLiteRecorder(SQLiteApplicationRecorder):
    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            *side_tables.DDL,
            chain.DDL_SQLITE,
            digest_chain.DDL,
            stream_cursors.DDL,
        ]

    def _insert_events(
        self,
        c: SQLiteCursor,
        stored_events: Sequence[StoredEvent],
        *,
        side_writes: Iterable[SideWrite] = (),
        read_guards: Sequence[tuple[UUID, int]] = (),
        **kwargs: Any,
    ) -> Sequence[int] | None:
        notification_ids = super()._insert_events(c, stored_events, **kwargs)
        if read_guards:  # the write lock is held: nothing can change before the commit
            c.executemany(
                side_tables.read_guard(self.events_table_name),
                [(aggregate_id.hex, version) for aggregate_id, version in read_guards],
            )
        if notification_ids:
            # The write lock is held from the first INSERT: no one else can extend the chain.
            c.execute(chain.SELECT_HEAD)
            head = c.fetchone()
            previous = head["hash"] if head else chain.GENESIS
            c.executemany(chain.INSERT, chain.links(previous, notification_ids, stored_events))
        writes = list(side_writes)
        if writes:
            # A deleted row's bytes are zeroed, not left in the page's free space (SQLite is
            # built with either default); the setting lasts for the connection.
            c.execute("PRAGMA secure_delete = ON")
        for sql, params in side_tables.runs(writes):
            c.executemany(sql, params)
        return notification_ids

    def write_side(self, writes: Sequence[SideWrite]) -> None:
        self.insert_events([], side_writes=writes)

    def wipe_deleted(self, timeout: float) -> None:
        """Move the WAL into the database file and truncate it: deleted rows were zeroed in
        their pages (secure_delete), but earlier versions of those pages lie in the WAL until a
        checkpoint. A reader inside a transaction holds the WAL: the checkpoint waits for it
        up to `timeout` seconds."""
        with self.datastore.get_connection(commit=True) as conn:
            cursor = conn.cursor()
            cursor.execute("PRAGMA busy_timeout")
            usual = cursor.fetchone()[0]
            cursor.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            try:
                cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                busy, _, _ = cursor.fetchone()
            finally:
                cursor.execute(f"PRAGMA busy_timeout = {usual}")
        if busy:
            raise WipeUnfinished(
                f"another connection kept a read transaction open for over {timeout:g} s, so "
                f"the write-ahead log ({self.datastore.pool.db_name}-wal) still holds the "
                "deleted rows"
            )

    def select_one(self, sql: str, params: tuple[Any, ...]) -> dict[str, Any] | None:
        rows = self.select_all(sql, params)
        return rows[0] if rows else None

    def select_all(self, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(sql, params)
            return [dict(row) for row in c.fetchall()]

    def select_pairs(self, sql: str, params: tuple[Any, ...]) -> dict[Any, Any]:
        """A query of two columns as a dict, the first to the second (no dict a row)."""
        with self.datastore.transaction(commit=False) as c:
            c.execute(sql, params)
            return dict(c.fetchall())

    def chain_source(self) -> chain_check.Source:
        """How a verifier reads the events with their links, on a connection of its own."""
        connect = {"database": self.datastore.pool.db_name}
        return chain_check.Source.of("sqlite", connect, self.events_table_name, "rowid")

    def first_link_without_event(self, start: int | None, stop: int | None) -> int | None:
        """The first link, from `start` and before `stop` (None: no bound), whose event is gone."""
        within, bounds = _between(start, stop, "?")
        row = self.select_one(
            f"SELECT min(position) AS position FROM ledger_chain l WHERE {within} NOT EXISTS "
            f"(SELECT 1 FROM {self.events_table_name} e WHERE e.rowid = l.position)",
            bounds,
        )
        return None if row is None or row["position"] is None else int(row["position"])

    def events_before(self, position: int) -> tuple[int, int, str] | None:
        """How many events lie before `position`, and the last one's position and link."""
        table = self.events_table_name
        count = self.select_one(f"SELECT count(*) AS n FROM {table} WHERE rowid < ?", (position,))
        last = self.select_one(
            f"SELECT e.rowid AS position, l.hash FROM {table} e "
            f"JOIN ledger_chain l ON l.position = e.rowid WHERE e.rowid < ? "
            f"ORDER BY e.rowid DESC LIMIT 1",
            (position,),
        )
        if count is None or last is None:
            return None
        return int(count["n"]), int(last["position"]), str(last["hash"])

    def events_after(self, positions: Sequence[tuple[UUID, int]]) -> list[StoredEvent]:
        """The stored events of many aggregates, each after the version given, in one query:
        ordered by aggregate, then version."""
        if not positions:
            return []
        wanted = ", ".join(["(?, ?)"] * len(positions))
        params = [value for id_, after in positions for value in (id_.hex, after)]
        # the ids asked for, by the text stored: an event's id is one of them, not a new UUID
        # parsed per row (profiled: a quarter of a full-scale import's `events_after`)
        ids = {id_.hex: id_ for id_, _ in positions}
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"WITH wanted(id, after) AS (VALUES {wanted}) "
                f"SELECT e.originator_id, e.originator_version, e.topic, e.state "
                f"FROM wanted JOIN {self.events_table_name} e "
                f"ON e.originator_id = wanted.id AND e.originator_version > wanted.after "
                f"ORDER BY e.originator_id, e.originator_version",
                params,
            )
            return [
                StoredEvent(
                    originator_id=ids.get(row["originator_id"])
                    or self.convert_originator_id(row["originator_id"]),
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=row["state"],
                )
                for row in c.fetchall()
            ]


STATEMENTS_CACHED: Final = 128
"""Prepared statements each SQLite connection keeps (Python's own default)."""


class LedgerSQLiteConnectionPool(SQLiteConnectionPool):
    """eventsourcing's pool of SQLite connections, each keeping its prepared statements.
    eventsourcing opens them with `cached_statements=True`, a cache of one statement: a save
    (BEGIN, the events' INSERT, the chain's head and INSERT, COMMIT) prepared every statement
    anew each time, and a read in a transaction its query (measured: a user's events read in
    a transaction 131 us, the same query alone 43 us; its preparation is most of it)."""

    def _create_connection(self) -> SQLiteConnection:
        # eventsourcing's `_create_connection`, but for the size of the statement cache
        try:
            c = sqlite3.connect(
                database=self.db_name,
                uri=True,
                check_same_thread=False,
                isolation_level=None,  # autocommit: the recorders issue BEGIN themselves
                cached_statements=STATEMENTS_CACHED,
                timeout=self.lock_timeout or SQLITE3_DEFAULT_LOCK_TIMEOUT,
            )
        except (sqlite3.Error, TypeError) as e:
            raise InterfaceError(e) from e
        if not self.is_sqlite_memory_mode and not self.is_journal_mode_wal:
            cursor = c.cursor()
            cursor.execute("PRAGMA journal_mode;")
            if cursor.fetchone()[0].lower() != "wal":
                cursor.execute("PRAGMA journal_mode=WAL;")
                self.journal_mode_was_changed_to_wal = True
            self.is_journal_mode_wal = True
        c.row_factory = sqlite3.Row
        return SQLiteConnection(sqlite_conn=c, max_age=self.max_age)


class LedgerSQLiteFactory(SQLiteFactory):
    application_recorder_class = LedgerSQLiteRecorder

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        made = self.datastore.pool
        made.close()  # it holds no connection yet: they are opened on first use
        self.datastore.pool = LedgerSQLiteConnectionPool(
            db_name=made.db_name, lock_timeout=made.lock_timeout
        )


def _pg(sql: str) -> str:
    return sql.replace("?", "%s")


def _rendered(statement: object) -> bytes:
    """A statement as psycopg sends it (identifiers quoted as without a connection)."""
    if isinstance(statement, bytes):
        return statement
    if isinstance(statement, str):
        return statement.encode()
    assert isinstance(statement, Composable), statement
    return statement.as_bytes(None)


def _between(
    start: int | None, stop: int | None, mark: LiteralString
) -> tuple[LiteralString, tuple[int, ...]]:
    """The conditions (each followed by AND) and parameters keeping a link's position from
    `start` and before `stop`; None: no bound on that side, so a link forged at any position,
    however low or high, is in range."""
    within: LiteralString = ""
    bounds: list[int] = []
    if start is not None:
        within += "position >= " + mark + " AND "
        bounds.append(start)
    if stop is not None:
        within += "position < " + mark + " AND "
        bounds.append(stop)
    return within, tuple(bounds)


SAVE_ATTEMPTS: Final = 10
"""PostgreSQL: how many times a save is sent while its connection keeps failing."""
SAVE_RETRY_WAIT: Final = 0.2  # seconds between two of them

LINKED_BY_THE_DATABASE: Final = 8
"""PostgreSQL: a save of this many events or fewer has its links computed by the database."""


class LedgerPostgresRecorder(PostgresApplicationRecorder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sql_create_statements.extend(
            Composed([SQL(ddl)])
            for ddl in (
                *side_tables.DDL,
                *side_tables.DDL_POSTGRES,
                chain.DDL,
                digest_chain.DDL,
                stream_cursors.DDL,
            )
        )
        # eventsourcing's statements of a save, rendered once instead of on every save (each
        # identifier quoted anew by libpq, each time)
        self.lock_table_statements = [_rendered(s) for s in self.lock_table_statements]
        rendered = _rendered(self.insert_events_statement)
        self.insert_events_statement = rendered  # type: ignore[assignment]
        self._notify = _rendered(SQL("NOTIFY {0}").format(Identifier(self.channel_name)))
        self._guard = _pg(side_tables.read_guard(self._guarded_events_table())).encode()
        self._insert_link = chain.insert_link_postgres(self._guarded_events_table()).encode()
        self._insert_linked = chain.insert_linked_postgres(self._guarded_events_table()).encode()
        # the stored events at the positions `(%s, %s)` (arrays), in that order; nulls if none
        self._select_as_sent = (
            "SELECT e.notification_id, e.topic, e.state "
            "FROM unnest(%s::uuid[], %s::bigint[]) WITH ORDINALITY AS sent(id, version, n) "
            f"LEFT JOIN {self._guarded_events_table()} e "
            "ON e.originator_id = sent.id AND e.originator_version = sent.version ORDER BY sent.n"
        ).encode()

    def create_table(self) -> None:
        with self.datastore.get_connection() as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (_CREATE_TABLES_LOCK,))
            try:
                super().create_table()
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (_CREATE_TABLES_LOCK,))

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """Send the save (`_send_save`), again if its connection fails, as eventsourcing's
        `@retry` did. A connection lost after the COMMIT left may have lost only the answer:
        the server committed, and the save sent again clashes with itself. So a clash after a
        failed attempt is checked: if what the save wrote is stored exactly as sent
        (`_positions_if_stored`), the first attempt committed, and the save succeeded."""
        attempt = 1
        while True:
            try:
                return self._send_save(stored_events, **kwargs)
            except (InterfaceError, OperationalError):
                if attempt == SAVE_ATTEMPTS:
                    raise
                attempt += 1
                time.sleep(SAVE_RETRY_WAIT * random.uniform(0.95, 1.05))
            except IntegrityError:
                if attempt > 1:
                    side_writes = kwargs.get("side_writes", ())
                    positions = self._positions_if_stored(stored_events, side_writes)
                    if positions is not None:
                        return positions if stored_events else None
                raise

    def _positions_if_stored(
        self, stored_events: Sequence[StoredEvent], side_writes: Iterable[SideWrite]
    ) -> list[int] | None:
        """The positions of the save's events if every one is stored as sent (originator,
        version, topic and state bytes), and every command id sent with them is stored with
        the same fingerprint and result; else None, as when nothing identifies the save. An
        event's state holds its command's actor, reason, command id and time: stored as sent,
        it was this save that stored it (a save's rows commit together, or none do)."""
        commands = {
            write.params[0]: write.params
            for write in side_writes
            if write.sql == side_tables.REMEMBER_COMMAND
        }
        if not stored_events and not commands:
            return None
        with self.datastore.get_connection() as conn:
            stored = conn.execute(
                self._select_as_sent,
                (
                    [event.originator_id for event in stored_events],
                    [event.originator_version for event in stored_events],
                ),
            ).fetchall()
            remembered = conn.execute(
                "SELECT command_id, fingerprint, result FROM ledger_commands "
                "WHERE command_id = ANY(%s)",
                (list(commands),),
            ).fetchall()
        if {row["command_id"]: tuple(row.values()) for row in remembered} != commands:
            return None
        for row, event in zip(stored, stored_events, strict=True):
            if row["topic"] != event.topic or bytes(row["state"]) != event.state:
                return None
        return [row["notification_id"] for row in stored]

    def _send_save(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """eventsourcing's steps (its hooks below, in its order) in one pipeline: one round
        trip for a save of a few events, whose links the database computes (a single event's
        in the statement that inserts it, `chain.insert_linked_postgres`; else a statement
        each, `chain.insert_link_postgres`), so that every statement, the COMMIT included, is
        sent before the first answer is awaited; two for a larger save (a batch), whose links
        are computed here from the positions the first brings back (the database's way costs a
        statement a link, a little more server time than an INSERT of rows made here).
        eventsourcing's own `insert_events` nests psycopg transaction blocks inside its
        pipeline, and each nested block's exit is a Sync and a wait: four round trips a save
        (measured: 1,050-1,200 -> 1,600-1,750 single commands/s with a raw single insert at
        3,000-4,000/s). Anything that fails, in the database or in Python, rolls the whole
        transaction back; the first statement to fail is what is raised (a version clash, a
        stale read guard): the statements behind it in the pipeline are not run."""
        notification_ids: Sequence[int] | None = None
        failed: Exception | None = None
        linked_here = len(stored_events) > LINKED_BY_THE_DATABASE
        with self.datastore.get_connection() as conn:
            try:
                with conn.cursor() as curs, conn.cursor() as inserted, conn.cursor() as head:
                    with conn.pipeline() as pipeline:
                        try:
                            curs.execute("BEGIN", prepare=False)
                            self._insert_events(curs, stored_events, **kwargs)
                            if stored_events:
                                self._insert_stored_events(
                                    inserted,
                                    stored_events,
                                    head=head if linked_here else None,
                                    **kwargs,
                                )
                                if linked_here:
                                    # now: a version clash raises here, before the links
                                    pipeline.sync()
                                    notification_ids = self._link_here(
                                        curs, inserted, head, stored_events
                                    )
                                elif len(stored_events) > 1:
                                    self._link_in_database(curs, stored_events)
                            curs.execute("COMMIT", prepare=False)
                        except Exception as error:  # raised after the pipeline, as
                            failed = error  # eventsourcing does (else psycopg warns)
                    # the pipeline's end sent the rest, and raised the first failure in it
                    if failed is None and stored_events and not linked_here:
                        notification_ids = [row["notification_id"] for row in inserted]
            except Exception as error:
                failed = failed or error
            if failed is not None:
                with contextlib.suppress(DriverError):  # the connection may be gone
                    conn.rollback()
                raise failed
        return notification_ids

    def _insert_events(
        self,
        curs: Cursor[DictRow],
        stored_events: Sequence[StoredEvent],
        *,
        side_writes: Iterable[SideWrite] = (),
        read_guards: Sequence[tuple[UUID, int]] = (),
        **kwargs: Any,
    ) -> None:
        # Runs before the events INSERT and its table lock, in the same transaction and in
        # eventsourcing's pipeline (a pipeline of our own around it measured no faster).
        for sql, params in side_tables.runs(side_writes):
            curs.executemany(_pg(sql), params)  # type: ignore[arg-type]

    def _insert_stored_events(
        self,
        curs: Cursor[DictRow],
        stored_events: Sequence[StoredEvent],
        *,
        read_guards: Sequence[tuple[UUID, int]] = (),
        head: Cursor[DictRow] | None = None,
        **kwargs: Any,
    ) -> None:
        # eventsourcing's steps (lock the table, notify, insert), with the read guards after
        # the lock: with it held, no writer can commit before us. A stale guard fails the save
        # with its own error, the first in the pipeline (the INSERT behind it is not run).
        # `head`: read the chain's head into it between the lock and the INSERT, so that the
        # round trip that returns the new positions brings it too, where it always was (a
        # statement queued behind a failing INSERT was once measured to turn its IntegrityError
        # into psycopg's PipelineAborted, which eventsourcing retries after 0.2 s; with psycopg
        # 3.3 the first failure is raised whatever is queued behind it, which the one-round-
        # trip save relies on: tests/test_save_links.py). Never prepared, should the lock
        # time out: psycopg would count it as prepared.
        self._lock_table(curs)
        if read_guards:
            curs.executemany(self._guard, list(read_guards))
        self._notify_channel(curs)
        if head is not None:
            head.execute(chain.SELECT_HEAD, prepare=False)
        if len(stored_events) == 1 and head is None:
            # a single command's event: inserted and linked by one statement (the composite
            # array eventsourcing's INSERT takes, and a statement, less to send)
            event = stored_events[0]
            curs.execute(
                self._insert_linked,
                (event.originator_id, event.originator_version, event.topic, event.state),
            )
            return
        PostgresAggregateRecorder._insert_stored_events(self, curs, stored_events, **kwargs)

    def _link_in_database(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent]
    ) -> None:
        """The events' links, a statement each in their order (each extends the head the one
        before left), the table lock held."""
        rows = [(event.originator_id, event.originator_version) for event in stored_events]
        curs.executemany(self._insert_link, rows)

    def _link_here(
        self,
        curs: Cursor[DictRow],
        inserted: Cursor[DictRow],
        head: Cursor[DictRow],
        stored_events: Sequence[StoredEvent],
    ) -> Sequence[int]:
        """The events' links computed here from their positions and the head read before
        them, the table lock held."""
        notification_ids = self._fetch_ids_after_insert_events(inserted, stored_events) or []
        if notification_ids:
            row = head.fetchone()
            previous = row["hash"] if row else chain.GENESIS
            rows = chain.links(previous, notification_ids, stored_events)
            curs.executemany(_pg(chain.INSERT), rows)  # type: ignore[arg-type]
        return notification_ids

    def _notify_channel(self, curs: Cursor[DictRow]) -> None:
        curs.execute(self._notify)

    def write_side(self, writes: Sequence[SideWrite]) -> None:
        self.insert_events([], side_writes=writes)

    def _guarded_events_table(self) -> str:
        return (
            SQL("{schema}.{table}")
            .format(
                schema=Identifier(self.datastore.schema), table=Identifier(self.events_table_name)
            )
            .as_string(None)
        )

    def wipe_deleted(self, timeout: float) -> None:
        """Rewrite the tables an erasure deletes from. A deleted row stays in its page until
        VACUUM; a plain VACUUM only marks its space free (the bytes stay until something is
        written over them), so VACUUM FULL, which copies the live rows into new files. It also
        copies the rows that a transaction older than the erasure could still read, so first
        those must end: on this server in any database (CREATE DATABASE in another one holds
        back every database), or a replication slot's. Waits up to `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self.datastore.get_connection() as conn:  # autocommit: VACUUM runs in none
            row = conn.execute("SELECT pg_current_xact_id()::xid::text AS xid").fetchone()
            assert row is not None
            horizon = row["xid"]
            while older := self._older_than(conn, horizon):
                if time.monotonic() >= deadline:
                    raise WipeUnfinished(
                        f"{older} that began before the erasure stayed open for over "
                        f"{timeout:g} s, and could still read the deleted rows"
                    )
                time.sleep(0.05)
            remaining = max(1, int((deadline - time.monotonic()) * 1000))
            conn.execute(SQL("SET lock_timeout = {}").format(Literal(f"{remaining}ms")))
            try:
                tables = SQL(", ").join(map(Identifier, side_tables.ERASED_FROM))
                conn.execute(SQL("VACUUM FULL ") + tables)
            except LockNotAvailable:
                raise WipeUnfinished(
                    f"other transactions held the tables {', '.join(side_tables.ERASED_FROM)} "
                    f"for over {timeout:g} s"
                ) from None
            finally:
                conn.execute("RESET lock_timeout")

    @staticmethod
    def _older_than(conn: Connection[DictRow], horizon: str) -> str:
        """What could still see rows deleted before transaction `horizon` ("" if nothing)."""
        row = conn.execute(
            "SELECT (SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
            "  AND (age(backend_xmin) >= age(%(x)s::xid) OR age(backend_xid) >= age(%(x)s::xid)))"
            " AS sessions,"
            " (SELECT count(*) FROM pg_replication_slots WHERE age(xmin) >= age(%(x)s::xid))"
            " AS slots",
            {"x": horizon},
        ).fetchone()
        assert row is not None
        if row["sessions"]:
            return f"{row['sessions']} transaction(s) on this server"
        if row["slots"]:
            return f"{row['slots']} replication slot(s)"
        return ""

    def select_one(self, sql: str, params: tuple[Any, ...]) -> dict[str, Any] | None:
        rows = self.select_all(sql, params)
        return rows[0] if rows else None

    def select_all(self, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        # One statement needs no transaction block: the connection's autocommit gives it a
        # snapshot of its own, in one round trip instead of three (BEGIN, it, ROLLBACK).
        with self.datastore.get_connection() as conn:
            rows = conn.execute(_pg(sql), params).fetchall()  # type: ignore[call-overload]
            return [dict(row) for row in rows]

    def select_pairs(self, sql: str, params: tuple[Any, ...]) -> dict[Any, Any]:
        """A query of two columns as a dict, the first to the second (no dict a row)."""
        with self.datastore.get_connection() as conn:
            rows = conn.execute(_pg(sql), params).fetchall()  # type: ignore[call-overload]
            return {key: value for key, value in (row.values() for row in rows)}

    def chain_source(self) -> chain_check.Source:
        """How a verifier reads the events with their links, on a connection of its own."""
        events = SQL("{schema}.{table}").format(
            schema=Identifier(self.datastore.schema), table=Identifier(self.events_table_name)
        )
        settings = cast(dict[str, Any], self.datastore.pool.kwargs)
        connect = {key: value for key, value in settings.items() if key != "row_factory"}
        return chain_check.Source.of(
            "postgresql", connect, events.as_string(None), "notification_id"
        )

    def first_link_without_event(self, start: int | None, stop: int | None) -> int | None:
        """The first link, from `start` and before `stop` (None: no bound), whose event is gone."""
        within, bounds = _between(start, stop, "%s")
        query = SQL(
            "SELECT min(position) AS position FROM ledger_chain l WHERE "
            + within
            + "NOT EXISTS (SELECT 1 FROM {schema}.{table} e WHERE e.notification_id = l.position)"
        ).format(schema=Identifier(self.datastore.schema), table=Identifier(self.events_table_name))
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(query, bounds)
            row = curs.fetchone()
        return None if row is None or row["position"] is None else int(row["position"])

    def events_before(self, position: int) -> tuple[int, int, str] | None:
        """How many events lie before `position`, and the last one's position and link."""
        table = SQL("{schema}.{table}").format(
            schema=Identifier(self.datastore.schema), table=Identifier(self.events_table_name)
        )
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL("SELECT count(*) AS n FROM {table} WHERE notification_id < %s").format(
                    table=table
                ),
                (position,),
            )
            count = curs.fetchone()
            curs.execute(
                SQL(
                    "SELECT e.notification_id AS position, l.hash FROM {table} e "
                    "JOIN ledger_chain l ON l.position = e.notification_id "
                    "WHERE e.notification_id < %s ORDER BY e.notification_id DESC LIMIT 1"
                ).format(table=table),
                (position,),
            )
            last = curs.fetchone()
        if count is None or last is None:
            return None
        return int(count["n"]), int(last["position"]), str(last["hash"])

    def events_after(self, positions: Sequence[tuple[UUID, int]]) -> list[StoredEvent]:
        """The stored events of many aggregates, each after the version given, in one query:
        ordered by aggregate, then version."""
        if not positions:
            return []
        # A nested loop of index look-ups, whatever the statistics say: unanalysed (just
        # imported), the planner merge-joined the whole primary key, or jitted the loop.
        query = SQL(
            "SELECT e.originator_id, e.originator_version, e.topic, e.state "
            "FROM unnest(%s::uuid[], %s::bigint[]) WITH ORDINALITY AS wanted(id, after, n) "
            "CROSS JOIN LATERAL (SELECT * FROM {schema}.{table} e "
            "WHERE e.originator_id = wanted.id AND e.originator_version > wanted.after "
            "OFFSET 0) e ORDER BY wanted.n, e.originator_version"
        ).format(schema=Identifier(self.datastore.schema), table=Identifier(self.events_table_name))
        # In a transaction block of psycopg's, not BEGIN ... ROLLBACK sent in one pipeline:
        # psycopg then sends the DEALLOCATE ALL a ROLLBACK calls for after the connection's
        # next statement, which deleted that statement if psycopg had just prepared it (two
        # writing processes then failed with "prepared statement _pg3_N does not exist").
        with self.datastore.transaction(commit=False) as curs:
            curs.execute("SET LOCAL jit = off")
            curs.execute(query, ([id_ for id_, _ in positions], [after for _, after in positions]))
            return [
                StoredEvent(
                    originator_id=row["originator_id"],
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=bytes(row["state"]),
                )
                for row in curs.fetchall()
            ]


class LedgerPostgresFactory(PostgresFactory):
    application_recorder_class = LedgerPostgresRecorder
