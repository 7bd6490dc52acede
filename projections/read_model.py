"""`ReadModel`: the read side's facade — keep the read models up to date, and ask them."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Connection, Engine, Select, event, insert, inspect, select, text

from ledger.application import Ledger
from ledger.storage import replay_file
from ledger.storage.database import open_engine
from ledger.storage.settings import (
    StorageError,
    database_url,
    is_postgres,
    is_writable,
    read_only_url,
    same_database,
    url_shown,
)
from projections import tables as t
from projections.personal import PersonalData
from projections.prepared import PreparedReader
from projections.projector import TRACKING_NAME, Projector
from projections.queries import Queries
from projections.reviews import ReviewQueries

_CREATE_LOCK = 7_350_002  # pg_advisory_xact_lock key: one process creates the tables at a time
SCHEMA_ROW = "schema-version"
SCHEMA_VERSION = 8  # raise whenever a read-model table changes shape


def projected_position() -> Select[tuple[int]]:
    """The position of the last event projected (no row before any)."""
    return select(t.projection_tracking.c.position).where(
        t.projection_tracking.c.name == TRACKING_NAME
    )


_POSITION: Final = projected_position()


class ReadModel(Queries, ReviewQueries):
    """`ReadModel(url=None)`: the same URL resolution as `Ledger`."""

    def __init__(
        self,
        url: str | None = None,
        *,
        page_size: int = 1000,
        source: Ledger | None = None,
        sealed: bool | None = None,
        read_only: bool | None = None,
    ) -> None:
        """`source`: the ledger whose events to project (default: the one at `url`); a
        point-in-time replay projects another database's events into a file of its own.
        `sealed`: whether personal data stays sealed with its user's key (default: when the
        events come from this database's own ledger, whose keys open it; a replay into a file
        of its own holds it in the open, see `projections.personal`). `read_only` (by default:
        when the database cannot be written, as `Ledger`): answer from the read models as they
        are; they cannot be built or caught up."""
        given = database_url(url)
        self.shown_url = url_shown(given)
        # a point-in-time replay file holds read models, not a log: nothing more to project,
        # and nothing to change (an old file is refused, not emptied, by a newer schema)
        self.replay = None if source is not None else replay_file.read(given)
        if read_only is None:
            read_only = self.replay is not None or not is_writable(given)
        self.read_only = read_only
        self.url = read_only_url(given) if self.read_only else given
        self.page_size = page_size
        self._source = source
        if sealed is None:  # the keys are in the source's database: sealed only beside them
            sealed = source is None or same_database(source.url, given)
        self.sealed = sealed
        self.engine: Engine = open_engine(self.url)
        self.reader = PreparedReader(self.engine)
        self.personal = PersonalData(self.engine, self.reader)
        self._writer = self.engine if self.read_only else open_engine(self.url, writer=True)
        if not self.read_only and self._writer.dialect.name == "sqlite":
            event.listen(self._writer, "connect", _commit_without_sync)
        self._ledger: Ledger | None = None
        self._projector: Projector | None = None
        if self.read_only:
            self._check_tables()
        else:
            self._create_tables()

    def _check_tables(self) -> None:
        """A read-only database's read models must be there, in this version's shape."""
        tracking = t.projection_tracking
        with self.engine.connect() as conn:
            stored = None
            if inspect(conn).has_table(tracking.name):
                stored = conn.execute(
                    select(tracking.c.position).where(tracking.c.name == SCHEMA_ROW)
                ).scalar_one_or_none()
        if stored != SCHEMA_VERSION:
            state = "not built" if stored is None else "from another version of the ledger"
            raise StorageError(
                f"the read models in {self.shown_url} are {state}, and it is open read-only: "
                "run `ledger rebuild` on a writable copy, or `ledger audit replay`"
            )

    def _create_tables(self) -> None:
        """Create the read models; drop and recreate them when their schema has changed (they
        are rebuilt from the log by the next catch-up)."""
        with self._writer.begin() as conn:
            if is_postgres(self.url):
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CREATE_LOCK})
            t.metadata.create_all(conn)
            tracking = t.projection_tracking.c
            stored = conn.execute(
                select(tracking.position).where(tracking.name == SCHEMA_ROW)
            ).scalar_one_or_none()
            if stored == SCHEMA_VERSION:
                return
            if stored is not None or conn.execute(select(tracking.name)).first() is not None:
                _drop_securely(conn)
                t.metadata.create_all(conn)
            conn.execute(
                insert(t.projection_tracking).values(name=SCHEMA_ROW, position=SCHEMA_VERSION)
            )

    @property
    def projector(self) -> Projector:
        if self._projector is None:
            source = self._source
            if source is None:
                if self._ledger is None:
                    self._ledger = Ledger(self.url)
                source = self._ledger
            self._projector = Projector(
                source, self._writer, page_size=self.page_size, sealed=self.sealed
            )
        return self._projector

    def catch_up(self, *, until: datetime | None = None, stop: int | None = None) -> int:
        """Project every event recorded so far; return how many. `until` leaves out events
        recorded after that instant; `stop` reads no further than that position. Read-only:
        0 when the read models are up to date; StorageError when they lag behind the log. A
        replay file: 0, it has no log."""
        if self.replay is not None:
            return 0
        if self.read_only:
            behind = self.lag()
            if behind:
                raise StorageError(
                    f"the read models in {self.shown_url} lag behind the log ({behind} not "
                    "projected), and it is open read-only: they cannot be brought up to date"
                )
            return 0
        return self.projector.catch_up(until=until, stop=stop)

    def lag(self) -> int:
        """How many events of the log are not projected yet."""
        head = self.projector.ledger.recorder.max_notification_id() or 0
        return max(0, head - self.position())

    def position(self) -> int:
        """The position of the last event projected (0 before any)."""
        found = self.reader.scalar(_POSITION, {})  # the read API asks on every request
        return 0 if found is None else int(found)

    def follow(
        self,
        stop: threading.Event,
        interval: float = 0.2,
        on_poll: Callable[[], object] | None = None,
    ) -> None:
        """Keep projecting until `stop` is set (polling: works on SQLite and PostgreSQL);
        `on_poll` runs before each poll (the CLI records grant expiries there)."""
        while not stop.is_set():
            if on_poll is not None:
                on_poll()
            if self.catch_up() == 0:
                stop.wait(interval)

    def rebuild(self) -> int:
        """Drop every read model and project the whole log again; return how many events."""
        replay_file.refuse(self.url, "it has no log to rebuild its read models from")
        if self.read_only:
            raise StorageError(
                f"{self.shown_url} is open read-only: the read models cannot be rebuilt"
            )
        with self._writer.begin() as conn:
            if is_postgres(self.url):
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CREATE_LOCK})
            _drop_securely(conn)
            t.metadata.create_all(conn)
            conn.execute(
                insert(t.projection_tracking).values(name=SCHEMA_ROW, position=SCHEMA_VERSION)
            )
        self._projector = None
        return self.catch_up()

    def close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()
        self.reader.close()
        self.engine.dispose()
        self._writer.dispose()


def _commit_without_sync(dbapi_connection: Any, _record: Any) -> None:
    """The read models' commits, without an fsync each (SQLite's WAL, synchronous NORMAL):
    a power cut may take the last pages back, never part of one (each page and its tracking
    position are one transaction), and the next catch-up projects them again. The log's own
    connections keep their setting. 29 page commits were 6% of a profiled rebuild."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.close()


def _drop_securely(conn: Connection) -> None:
    """Drop the read models. Older versions held personal data in the open: on SQLite the
    freed pages are zeroed (PostgreSQL removes a dropped table's files)."""
    if conn.dialect.name != "sqlite":
        t.metadata.drop_all(conn)
        return
    usual = conn.exec_driver_sql("PRAGMA secure_delete").scalar()
    conn.exec_driver_sql("PRAGMA secure_delete = ON")
    t.metadata.drop_all(conn)
    conn.exec_driver_sql(f"PRAGMA secure_delete = {int(usual or 0)}")
