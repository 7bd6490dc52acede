"""The hot paths: SQLAlchemy Core statements compiled once, run straight on a DBAPI cursor.

A point query through `engine.connect()` + `Connection.execute` spends most of its time outside
the database (measured on SQLite: ~45 of ~52 µs of a `has_role` go to the pool checkout and
reset, the compiled-cache look-up, the execution context and the result wrapper); so does each
of the projector's per-event statements. Here the statements are still written with Core and
compiled by SQLAlchemy for the engine's dialect, with the dialect's own bind and result
processors; only the per-call machinery is left out.

- `PreparedReader`: each thread keeps one connection, in autocommit, detached from the engine's
  pool (a pool of five never limits how many threads can ask).
- `PageWriter` (`projections.page_writer`): the projector's writes, in its page transaction.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Dialect, Engine
from sqlalchemy.sql import ClauseElement, Select
from sqlalchemy.sql.compiler import SQLCompiler

Processor = Callable[[Any], Any] | None
_REQUIRED: Any = object()


class _Deferred:
    """A parameter's value made when the statement runs, not when it is compiled."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


class PreparedQuery:
    """One statement compiled for one dialect, with its parameters' and columns' processors.
    An INSERT without values is compiled for the given `column_keys`."""

    def __init__(
        self,
        statement: ClauseElement,
        dialect: Dialect,
        column_keys: Sequence[str] | None = None,
    ) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect, column_keys=column_keys))
        self.sql = compiled.string
        positions = list(compiled.positiontup or []) if compiled.positional else None
        binds: dict[str, Processor] = {}
        fixed: dict[str, Any] = {}  # values written into the statement (`count + 1`)
        for bind, name in compiled.bind_names.items():
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None or name not in binds:
                # one name, several binds (`x < :at THEN :at`): the typed one decides
                binds[name] = process
            if bind.callable is not None:  # a value taken at each execution (the time now)
                fixed[name] = _Deferred(bind.callable)
            elif not bind.required:
                fixed[name] = bind.effective_value
        # (name, processor, value if the caller gives none) per parameter name; a positional
        # driver (SQLite) takes them by placeholder, where a name can repeat (`:at` twice)
        self._names = list(binds)
        self._plan = [(name, binds[name], fixed.get(name, _REQUIRED)) for name in self._names]
        self._order: list[int] | None = (
            None if positions is None else [self._names.index(name) for name in positions]
        )
        self._in_order = self._order == list(range(len(self._names)))  # each name once, in order
        selected = list(statement.selected_columns) if isinstance(statement, Select) else []
        self._types = [column.type.dialect_impl(dialect) for column in selected]
        self._dialect = dialect
        self._columns: list[tuple[int, Callable[[Any], Any]]] | None = None

    def parameters(self, values: Mapping[str, Any]) -> Sequence[Any] | dict[str, Any]:
        bound = []
        for name, process, default in self._plan:
            value = values[name] if default is _REQUIRED else values.get(name, default)
            if type(value) is _Deferred:
                value = value.make()
            bound.append(process(value) if process is not None and value is not None else value)
        if self._order is None:
            return dict(zip(self._names, bound, strict=True))
        if self._in_order:
            return bound
        return [bound[index] for index in self._order]

    def processors(self, description: Sequence[Any]) -> list[Processor]:
        """Each selected column's result processor (None: the driver's value as it is), for the
        cursor's `description`: some drivers' processors depend on the type code it reports."""
        return [
            kind.result_processor(self._dialect, column[1])
            for kind, column in zip(self._types, description, strict=True)
        ]

    @property
    def described(self) -> bool:
        """Whether `rows` has what it needs of a cursor's description (after its first call):
        psycopg builds the description's column objects anew on each asking."""
        return self._columns is not None

    def rows(
        self, description: Sequence[Any] | None, raw: list[Sequence[Any]]
    ) -> list[Sequence[Any]]:
        if self._columns is None:
            assert description is not None, "the first rows come with their description"
            self._columns = [
                (index, processor)
                for index, processor in enumerate(self.processors(description))
                if processor is not None
            ]
        if not self._columns:
            return raw
        processed: list[Sequence[Any]] = []
        for row in raw:
            values = list(row)
            for index, process in self._columns:
                if (value := values[index]) is not None:
                    values[index] = process(value)
            processed.append(values)
        return processed


class PreparedStatements:
    """The compiled forms of long-lived statements (module constants, or the products of cached
    builders), remembered by identity; each is kept beside its compiled form, so its id cannot
    be reused."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._compiled: dict[Any, tuple[ClauseElement, PreparedQuery]] = {}

    def get(
        self, statement: ClauseElement, column_keys: Sequence[str] | None = None
    ) -> PreparedQuery:
        key = id(statement) if column_keys is None else (id(statement), *column_keys)
        found = self._compiled.get(key)
        if found is None:
            found = (statement, PreparedQuery(statement, self.dialect, column_keys))
            self._compiled[key] = found
        return found[1]


class PreparedReader:
    """Runs prepared queries on the calling thread's own autocommit connection."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._local = threading.local()
        self._statements = PreparedStatements(engine.dialect)
        self._connections: weakref.WeakSet[_Held] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._generation = 0  # raised by close(): threads then open fresh connections
        self._disconnect_error: type[Exception] = engine.dialect.loaded_dbapi.OperationalError

    def all(self, statement: Select[Any], values: Mapping[str, Any]) -> list[Sequence[Any]]:
        """The rows of `statement` (a module constant or the product of a cached builder: it is
        compiled on first sight and remembered by identity)."""
        query = self._statements.get(statement)
        parameters = query.parameters(values)
        description, rows = self.raw(query, parameters, describe=not query.described)
        return query.rows(description, rows)

    def prepared(self, statement: Select[Any]) -> PreparedQuery:
        """`statement` compiled, as `all` compiles it."""
        return self._statements.get(statement)

    def raw(
        self, query: PreparedQuery, parameters: Any, describe: bool = True
    ) -> tuple[Sequence[Any] | None, list[Any]]:
        """The cursor's description (if `describe`) and the rows as the driver gives them, for
        `query`'s parameters already bound."""
        try:
            return self._run(query.sql, parameters, describe)
        except self._disconnect_error:
            self._forget()  # a dropped connection (server restart, idle timeout): one retry
            return self._run(query.sql, parameters, describe)

    def all_of(self, *asked: tuple[Select[Any], Mapping[str, Any]]) -> list[list[Sequence[Any]]]:
        """The rows of each statement, the statements sent together: on PostgreSQL in one
        round trip (psycopg's pipeline mode), each in its own implicit transaction."""
        queries = [self._statements.get(statement) for statement, _ in asked]
        runs = [
            (query.sql, query.parameters(values), not query.described)
            for query, (_, values) in zip(queries, asked, strict=True)
        ]
        try:
            results = self._run_all(runs)
        except self._disconnect_error:
            self._forget()
            results = self._run_all(runs)
        return [
            query.rows(description, rows)
            for query, (description, rows) in zip(queries, results, strict=True)
        ]

    def _run_all(
        self, runs: list[tuple[str, Any, bool]]
    ) -> list[tuple[Sequence[Any] | None, list[Sequence[Any]]]]:
        connection = self._connection()
        if not hasattr(connection, "pipeline"):  # not psycopg: one after the other
            return [self._run(*run) for run in runs]
        cursors = [connection.cursor() for _ in runs]
        try:
            with connection.pipeline():
                for cursor, (sql, parameters, _) in zip(cursors, runs, strict=True):
                    cursor.execute(sql, parameters)
            return [
                (cursor.description if describe else None, list(cursor.fetchall()))
                for cursor, (_, _, describe) in zip(cursors, runs, strict=True)
            ]
        finally:
            for cursor in cursors:
                cursor.close()

    def scalar(self, statement: Select[Any], values: Mapping[str, Any]) -> Any:
        rows = self.all(statement, values)
        return rows[0][0] if rows else None

    def _run(
        self, sql: str, parameters: Any, describe: bool
    ) -> tuple[Sequence[Any] | None, list[Sequence[Any]]]:
        cursor = self._connection().cursor()
        try:
            cursor.execute(sql, parameters)
            return cursor.description if describe else None, list(cursor.fetchall())
        finally:
            cursor.close()

    def _connection(self) -> Any:
        held: _Held | None = getattr(self._local, "held", None)
        if held is None or held.generation != self._generation:
            proxy = self.engine.raw_connection()
            proxy.detach()
            connection = proxy.dbapi_connection
            assert connection is not None
            self.engine.dialect.set_isolation_level(connection, "AUTOCOMMIT")
            held = _Held(connection, self._generation)
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
            self._generation += 1
            for held in list(self._connections):
                held.close()
            self._connections.clear()


class _Held:
    """A thread's connection; closed when the thread ends (its local goes) or on `close()`."""

    def __init__(self, connection: Any, generation: int) -> None:
        self.connection, self.generation = connection, generation
        self._finalizer = weakref.finalize(self, _close_quietly, connection)

    def close(self) -> None:
        self._finalizer()


def _close_quietly(connection: Any) -> None:
    with contextlib.suppress(Exception):  # already closed, or the server went away
        connection.close()
