"""The projector's writes in its page transaction: queued, and sent per table in runs of one
statement (`executemany`), each row's parameters bound by code generated for its statement.

Per event, the driver call, and on PostgreSQL a send and a poll per statement, were a fifth of
a rebuild; binding parameters through `PreparedQuery.parameters`' general loop another 29%
(SQLite, 55,001 events, cProfile)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Hashable, Mapping, Sequence
from itertools import chain
from typing import Any, Final

from sqlalchemy import Connection, Insert, Table
from sqlalchemy.sql import ClauseElement, Select

from projections.prepared import _REQUIRED, PreparedQuery, PreparedStatements, _Deferred

Binder = Callable[[Mapping[str, Any]], Any]


def binder(query: PreparedQuery) -> Binder:
    """`query.parameters` as straight-line code: the same driver parameters for the same values
    (tests/test_page_writer.py compares them), without the loop over the plan and the tests
    that the statement settles once."""
    scope: dict[str, Any] = {"_Deferred": _Deferred}
    lines = ["def bind(values):"]
    for index, (name, process, default) in enumerate(query._plan):
        value = f"v{index}"
        if default is _REQUIRED:
            lines.append(f"    {value} = values[{name!r}]")
        else:
            scope[f"d{index}"] = default
            lines.append(f"    {value} = values.get({name!r}, d{index})")
            lines.append(f"    if type({value}) is _Deferred: {value} = {value}.make()")
        if process is not None:
            scope[f"p{index}"] = process
            lines.append(f"    if {value} is not None: {value} = p{index}({value})")
    if query._order is None:  # named parameters (psycopg)
        items = ", ".join(f"{name!r}: v{index}" for index, name in enumerate(query._names))
        lines.append(f"    return {{{items}}}")
    else:  # positional (SQLite), by placeholder: a name can repeat
        lines.append(f"    return [{', '.join(f'v{index}' for index in query._order)}]")
    exec("\n".join(lines), scope)  # the names are the statement's own bind names
    return scope["bind"]  # type: ignore[no-any-return]


class WriteStatements(PreparedStatements):
    """Prepared statements, each with its generated binder, and on PostgreSQL the COPY that
    loads an INSERT's rows."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._binders: dict[int, tuple[PreparedQuery, Binder]] = {}
        # per statement, the names of its last values (an INSERT's), its compiled form, binder
        self._last: dict[int, tuple[ClauseElement, tuple[str, ...] | None, PreparedQuery, Binder]]
        self._last = {}
        self._copies: dict[int, tuple[PreparedQuery, str | None]] = {}
        self._values: dict[int, tuple[PreparedQuery, tuple[str, int] | None]] = {}

    def binder(self, query: PreparedQuery) -> Binder:
        found = self._binders.get(id(query))
        if found is None:
            found = self._binders[id(query)] = (query, binder(query))
        return found[1]

    def for_values(
        self, statement: ClauseElement, values: Mapping[str, Any]
    ) -> tuple[PreparedQuery, Binder]:
        """The statement compiled for these values (an INSERT for their names), and its
        binder: what `get` and `binder` give, found in one look-up per event."""
        names = tuple(values) if getattr(statement, "is_insert", False) is True else None
        found = self._last.get(id(statement))
        if found is not None and found[1] == names:
            return found[2], found[3]
        query = self.get(statement, names)
        bind = self.binder(query)
        self._last[id(statement)] = (statement, names, query, bind)
        return query, bind

    def copy(self, statement: ClauseElement, query: PreparedQuery) -> str | None:
        """`COPY table (columns) FROM STDIN` for a plain INSERT of named parameters, one per
        column (PostgreSQL), else None."""
        found = self._copies.get(id(query))
        if found is None:
            found = self._copies[id(query)] = (query, self._copy(statement, query))
        return found[1]

    def rows_at_once(
        self, statement: ClauseElement, query: PreparedQuery
    ) -> tuple[str, int] | None:
        """SQLite: a plain INSERT's statement for many rows at once (`VALUES (..), (..)`), and
        how many; else None."""
        found = self._values.get(id(query))
        if found is None:
            found = self._values[id(query)] = (query, self._rows_at_once(statement, query))
        return found[1]

    def _rows_at_once(
        self, statement: ClauseElement, query: PreparedQuery
    ) -> tuple[str, int] | None:
        if self.dialect.name != "sqlite" or not _plain_insert(statement) or not query._in_order:
            return None
        head, values, rest = query.sql.rpartition(" VALUES ")
        if not values or _ONE_ROW.fullmatch(rest) is None:
            return None
        rows = max(1, _SQLITE_VARIABLES // (rest.count("?")))
        return f"{head} VALUES {', '.join([rest] * rows)}", rows

    def _copy(self, statement: ClauseElement, query: PreparedQuery) -> str | None:
        if not _plain_insert(statement):
            return None
        assert isinstance(statement, Insert) and isinstance(statement.table, Table)
        table = statement.table
        plain = (
            self.dialect.name == "postgresql"
            and query._order is None
            and all(name in table.c and table.c[name].name == name for name in query._names)
        )
        if not plain:
            return None
        quoted = self.dialect.identifier_preparer
        columns = ", ".join(quoted.quote(name) for name in query._names)
        return f"COPY {quoted.format_table(table)} ({columns}) FROM STDIN"


# SQLite's bound on a statement's parameters before 3.32 (32,766 since): rows sent at once
_SQLITE_VARIABLES: Final = 999
_ONE_ROW: Final = re.compile(r"\(\?(?:, \?)*\)")


def _plain_insert(statement: ClauseElement) -> bool:
    """An INSERT of given values into a table: no ON CONFLICT, no RETURNING."""
    return (
        isinstance(statement, Insert)
        and isinstance(statement.table, Table)
        and statement._post_values_clause is None
        and not statement._returning
    )


class PageWriter:
    """Writes inside a SQLAlchemy transaction through its DBAPI cursor: prepared statements for
    the statements run once per event; `connection()` (SQLAlchemy) for reads and for the rare
    statements built per call.

    Writes are queued. Writes to different tables touch different rows, so their order across
    tables is free; within a table, a write joins the latest run of its statement only when no
    write queued after that run may touch the same rows: its `key` (the rows it touches, e.g. a
    user's id; None: any row of the table) is in none of them. Each table's runs go out in
    order. Every queued write is sent before any read (`all`, `connection()`) and when the
    writer closes, before the page's transaction ends."""

    def __init__(self, conn: Connection, statements: WriteStatements) -> None:
        self._conn = conn
        self._statements = statements
        # psycopg: writes are sent in pipeline mode, without waiting for each reply (they need
        # none); the pipeline ends before any read through SQLAlchemy, which wants its result
        self._start_pipeline = getattr(conn.connection.driver_connection, "pipeline", None)
        self._pipeline = contextlib.ExitStack()
        self._piped = False
        self._cursor = conn.connection.cursor()
        self._queued: dict[Any, list[_Run]] = {}

    def connection(self) -> Connection:
        """The SQLAlchemy connection, every write queued so far sent and answered."""
        self.send()
        self._end_pipeline()
        return self._conn

    def execute(
        self, statement: ClauseElement, values: Mapping[str, Any], key: Hashable = None
    ) -> None:
        """Queue a write; `key`: the rows it touches, in its table (None: any)."""
        query, bind = self._statements.for_values(statement, values)
        self._queue(statement, query, [bind(values)], key)

    def executemany(self, statement: ClauseElement, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        query, bind = self._statements.for_values(statement, rows[0])
        self._queue(statement, query, [bind(values) for values in rows], None)

    def executemany_bound(
        self, statement: ClauseElement, query: PreparedQuery, parameters: list[Any]
    ) -> None:
        """Queue rows given as the driver's parameters of `query` (the compiled `statement`),
        bound by the caller."""
        if parameters:
            self._queue(statement, query, parameters, None)

    def all(self, statement: Select[Any], values: Mapping[str, Any]) -> list[Sequence[Any]]:
        """The rows of a prepared query, read in the page's transaction (after every write
        queued so far)."""
        query = self._statements.get(statement)
        self.send()
        self._end_pipeline()
        self._cursor.execute(query.sql, query.parameters(values))
        return query.rows(self._cursor.description, list(self._cursor.fetchall()))

    def send(self) -> None:
        """Send every queued write."""
        if not self._queued:
            return
        queued, self._queued = self._queued, {}
        cursor = self._cursor
        for runs in queued.values():
            for run in runs:
                if len(run.parameters) > 1 and run.copy is not None:
                    self._end_pipeline()  # COPY cannot run in a pipeline
                    names = run.query._names
                    with cursor.copy(run.copy) as copy:
                        for values in run.parameters:
                            copy.write_row([values[name] for name in names])
                    continue
                if len(run.parameters) > 1 and run.at_once is not None:
                    # one statement for many rows, not a step per row (callgrind: 2% fewer
                    # instructions in a process rebuilding a log twice)
                    sql, rows = run.at_once
                    parameters = run.parameters
                    whole = len(parameters) - len(parameters) % rows
                    for first in range(0, whole, rows):
                        cursor.execute(
                            sql, list(chain.from_iterable(parameters[first : first + rows]))
                        )
                    if whole < len(parameters):
                        cursor.executemany(run.query.sql, parameters[whole:])
                    continue
                self._in_pipeline()
                if len(run.parameters) == 1:
                    cursor.execute(run.query.sql, run.parameters[0])
                else:
                    cursor.executemany(run.query.sql, run.parameters)

    def _queue(
        self, statement: ClauseElement, query: PreparedQuery, parameters: list[Any], key: Hashable
    ) -> None:
        runs = self._queued.setdefault(getattr(statement, "table", None), [])
        if key is None:
            if runs and runs[-1].query is query:  # the table's last write: nothing reordered
                runs[-1].parameters.extend(parameters)
                runs[-1].keys = None
                return
        else:
            for run in reversed(runs):
                if run.query is query:
                    run.parameters.extend(parameters)
                    if run.keys is not None:
                        run.keys.add(key)
                    return
                if run.keys is None or key in run.keys:
                    break
        copy = at_once = None
        if self._start_pipeline is not None:
            copy = self._statements.copy(statement, query)
        else:
            at_once = self._statements.rows_at_once(statement, query)
        runs.append(_Run(query, parameters, None if key is None else {key}, copy, at_once))

    def _end_pipeline(self) -> None:
        self._pipeline.close()
        self._piped = False

    def _in_pipeline(self) -> None:
        if self._start_pipeline is not None and not self._piped:
            self._pipeline.enter_context(self._start_pipeline())
            self._piped = True

    def __enter__(self) -> PageWriter:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if exc_info[0] is None:
            try:
                self.send()
            except BaseException as error:
                self._close(type(error), error, error.__traceback__)
                raise
        self._close(*exc_info)

    def _close(self, *exc_info: Any) -> None:
        self._cursor.close()
        self._pipeline.__exit__(*exc_info)


class _Run:
    """Queued writes of one statement, sent together; `keys`: the rows they touch (None: any);
    `copy`: the COPY that loads them, if the statement is a plain INSERT on PostgreSQL;
    `at_once`: on SQLite, its statement for many rows and how many."""

    __slots__ = ("at_once", "copy", "keys", "parameters", "query")

    def __init__(
        self,
        query: PreparedQuery,
        parameters: list[Any],
        keys: set[Any] | None,
        copy: str | None,
        at_once: tuple[str, int] | None,
    ) -> None:
        self.query = query
        self.parameters = parameters
        self.keys = keys
        self.copy = copy
        self.at_once = at_once
