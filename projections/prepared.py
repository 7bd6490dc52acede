"""The hot read path: Core statements compiled once, run on a DBAPI connection of each thread's own.

A point query through `engine.connect()` + `Connection.execute` spends most of its time outside
the database (measured on SQLite: ~45 of ~52 µs of a `has_role` go to the pool checkout and
reset, the compiled-cache look-up, the execution context and the result wrapper). Here the
statement is still written with SQLAlchemy Core and compiled by SQLAlchemy for the engine's
dialect, with the dialect's own bind and result processors; only the per-call machinery is left
out. Each thread keeps one connection, in autocommit, detached from the engine's pool so that a
pool of five never limits how many threads can ask.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Dialect, Engine
from sqlalchemy.sql import Select

Processor = Callable[[Any], Any] | None


class PreparedQuery:
    """One statement compiled for one dialect, with its parameters' and columns' processors."""

    def __init__(self, statement: Select[Any], dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = compiled.string
        self._positions: Sequence[str] | None = (
            list(compiled.positiontup or []) if compiled.positional else None
        )
        self._binds: dict[str, Processor] = {
            name: bind.type.dialect_impl(dialect).bind_processor(dialect)
            for bind, name in compiled.bind_names.items()
        }
        self._types = [column.type.dialect_impl(dialect) for column in statement.selected_columns]
        self._dialect = dialect
        self._columns: list[Processor] | None = None

    def parameters(self, values: Mapping[str, Any]) -> Sequence[Any] | dict[str, Any]:
        bound = {}
        for name, process in self._binds.items():
            value = values[name]
            bound[name] = process(value) if process is not None and value is not None else value
        if self._positions is None:
            return bound
        return [bound[name] for name in self._positions]

    def rows(self, description: Sequence[Any], raw: list[Sequence[Any]]) -> list[tuple[Any, ...]]:
        if self._columns is None:
            # some drivers' processors depend on the type code the cursor reports
            self._columns = [
                kind.result_processor(self._dialect, column[1])
                for kind, column in zip(self._types, description, strict=True)
            ]
        columns = self._columns
        return [
            tuple(
                value if process is None or value is None else process(value)
                for value, process in zip(row, columns, strict=True)
            )
            for row in raw
        ]


class PreparedReader:
    """Runs prepared queries on the calling thread's own autocommit connection."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._local = threading.local()
        self._queries: dict[int, tuple[Select[Any], PreparedQuery]] = {}
        self._connections: weakref.WeakSet[_Held] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._disconnect_error: type[Exception] = engine.dialect.loaded_dbapi.OperationalError

    def all(self, statement: Select[Any], values: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """The rows of `statement` (a module constant or the product of a cached builder: it is
        compiled on first sight and remembered by identity)."""
        query = self._prepare(statement)
        parameters = query.parameters(values)
        try:
            description, rows = self._run(query.sql, parameters)
        except self._disconnect_error:
            self._forget()  # a dropped connection (server restart, idle timeout): one retry
            description, rows = self._run(query.sql, parameters)
        return query.rows(description, rows)

    def scalar(self, statement: Select[Any], values: Mapping[str, Any]) -> Any:
        rows = self.all(statement, values)
        return rows[0][0] if rows else None

    def _prepare(self, statement: Select[Any]) -> PreparedQuery:
        found = self._queries.get(id(statement))
        if found is None:
            # the statement is kept beside its compiled form, so its id cannot be reused
            found = (statement, PreparedQuery(statement, self.engine.dialect))
            self._queries[id(statement)] = found
        return found[1]

    def _run(self, sql: str, parameters: Any) -> tuple[Sequence[Any], list[Sequence[Any]]]:
        cursor = self._connection().cursor()
        try:
            cursor.execute(sql, parameters)
            return cursor.description, list(cursor.fetchall())
        finally:
            cursor.close()

    def _connection(self) -> Any:
        held: _Held | None = getattr(self._local, "held", None)
        if held is None:
            proxy = self.engine.raw_connection()
            proxy.detach()
            connection = proxy.dbapi_connection
            assert connection is not None
            self.engine.dialect.set_isolation_level(connection, "AUTOCOMMIT")
            held = _Held(connection)
            self._local.held = held
            with self._lock:
                self._connections.add(held)
        return held.connection

    def _forget(self) -> None:
        held = getattr(self._local, "held", None)
        if held is not None:
            self._local.held = None
            held.close()

    def close(self) -> None:
        with self._lock:
            for held in list(self._connections):
                held.close()
            self._connections.clear()


class _Held:
    """A thread's connection; closed when the thread ends (its local goes) or on `close()`."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self._finalizer = weakref.finalize(self, _close_quietly, connection)

    def close(self) -> None:
        self._finalizer()


def _close_quietly(connection: Any) -> None:
    with contextlib.suppress(Exception):  # already closed, or the server went away
        connection.close()
