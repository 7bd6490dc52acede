"""`ReadModel`: the read side's facade — keep the read models up to date, and ask them."""

from __future__ import annotations

import threading
from datetime import datetime

from sqlalchemy import Connection, Engine, insert, select, text

from ledger.application import Ledger
from ledger.storage import replay_file
from ledger.storage.database import open_engine
from ledger.storage.settings import database_url, is_postgres
from projections import tables as t
from projections.personal import PersonalData
from projections.prepared import PreparedReader
from projections.projector import Projector
from projections.queries import Queries

_CREATE_LOCK = 7_350_002  # pg_advisory_xact_lock key: one process creates the tables at a time
SCHEMA_ROW = "schema-version"
SCHEMA_VERSION = 5  # raise whenever a read-model table changes shape


class ReadModel(Queries):
    """`ReadModel(url=None)`: the same URL resolution as `Ledger`."""

    def __init__(
        self,
        url: str | None = None,
        *,
        page_size: int = 1000,
        source: Ledger | None = None,
        sealed: bool | None = None,
    ) -> None:
        """`source`: the ledger whose events to project (default: the one at `url`); a
        point-in-time replay projects another database's events into a file of its own.
        `sealed`: whether personal data stays sealed with its user's key (default: unless
        `source` is given, as the keys stay in the source's database; see
        `projections.personal`)."""
        self.url = database_url(url)
        self.page_size = page_size
        self._source = source
        self.sealed = source is None if sealed is None else sealed
        self.engine: Engine = open_engine(self.url)
        self.reader = PreparedReader(self.engine)
        self.personal = PersonalData(self.engine)
        self._writer = open_engine(self.url, writer=True)
        self._ledger: Ledger | None = None
        self._projector: Projector | None = None
        self._create_tables()
        # a point-in-time replay file holds read models, not a log: nothing more to project
        self.replay = None if source is not None else replay_file.read(self.url)

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
        recorded after that instant; `stop` reads no further than that position."""
        if self.replay is not None:
            return 0
        return self.projector.catch_up(until=until, stop=stop)

    def position(self) -> int:
        """The position of the last event projected (0 before any)."""
        with self.engine.connect() as conn:
            return self.projector.position(conn)

    def follow(self, stop: threading.Event, interval: float = 0.2) -> None:
        """Keep projecting until `stop` is set (polling: works on SQLite and PostgreSQL)."""
        while not stop.is_set():
            if self.catch_up() == 0:
                stop.wait(interval)

    def rebuild(self) -> int:
        """Drop every read model and project the whole log again; return how many events."""
        replay_file.refuse(self.url, "it has no log to rebuild its read models from")
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
