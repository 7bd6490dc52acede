"""What the read API's routes share: the ledger, the read models (caught up on each request) and
the token service, opened on first use."""

import logging
import threading

from sqlalchemy import text

from ledger.application import Ledger
from ledger.storage.settings import database_url, is_postgres
from projections.api.auth import TokenService
from projections.read_model import ReadModel

log = logging.getLogger("projections.api.app")  # the name the API has always logged under


class Services:
    """The ledger, the read models and the token service, opened on first use."""

    def __init__(self, url: str | None, token_ttl: int) -> None:
        self.url = database_url(url)
        self.token_ttl = token_ttl
        self.projection_failure: str | None = None  # why the last catch-up failed, if it did
        self._lock = threading.Lock()
        self._ledger: Ledger | None = None
        self._read_model: ReadModel | None = None
        self._tokens: TokenService | None = None
        self.reads_in_loop = False  # known once open; see `_reads_never_wait`

    def _open(self) -> None:
        """All three or none: a failed opening (the database unreachable, or full) is tried
        again by the next request, instead of leaving a half-open set behind for good."""
        if self._tokens is not None:
            return
        ledger = Ledger(self.url)
        try:
            read_model = ReadModel(self.url)
        except BaseException:
            ledger.close()
            raise
        self._ledger, self._read_model = ledger, read_model
        self.reads_in_loop = self._reads_never_wait(read_model)
        self._tokens = TokenService(ledger, self.token_ttl, read_model.reader)

    def _reads_never_wait(self, read_model: ReadModel) -> bool:
        """Whether a read of the database never waits on another connection: SQLite in WAL
        mode, where readers take no lock a writer holds (the ledger's databases are). Such
        reads may run in the event loop; PostgreSQL's (a round trip each, and a wait for a
        lock while, e.g., a rebuild replaces a table) and a rollback journal's go to a
        thread."""
        if is_postgres(self.url):
            return False
        with read_model.engine.connect() as connection:
            mode = connection.execute(text("PRAGMA journal_mode")).scalar()
        return str(mode).lower() == "wal"

    def opened(self) -> tuple[TokenService, ReadModel] | None:
        """The token service and the read models if open, else None; never waits (for the
        lock a catch-up holds)."""
        tokens, read_model = self._tokens, self._read_model
        return None if tokens is None or read_model is None else (tokens, read_model)

    def opened_ledger(self) -> Ledger | None:
        """The ledger if it is open (never waits), else None."""
        return self._ledger if self._tokens is not None else None

    @property
    def ledger(self) -> Ledger:
        with self._lock:
            self._open()
        assert self._ledger is not None
        return self._ledger

    @property
    def tokens(self) -> TokenService:
        with self._lock:
            self._open()
        assert self._tokens is not None
        return self._tokens

    def reads(self, seen: tuple[int, int] | None = None) -> ReadModel:
        """The read models, caught up with the log; or, when projecting fails, as they stand
        (each page commits with its position, so that is a consistent state). `seen`: the
        log's head and the read models' position, if just read (by the token check)."""
        with self._lock:
            self._open()
            assert self._ledger is not None and self._read_model is not None
            if seen is None:
                seen = (
                    self._ledger.recorder.max_notification_id() or 0,
                    self._read_model.position(),
                )
            if seen[0] > seen[1]:
                self._catch_up(self._read_model)
            return self._read_model

    def _catch_up(self, read_model: ReadModel) -> None:
        try:
            read_model.catch_up()
        except Exception as error:  # whatever failed, the last committed state stays good
            lines = str(error).strip().splitlines()
            failure = f"{type(error).__name__}: {lines[0] if lines else 'no message'}"
            if failure != self.projection_failure:  # one line per new failure, not per request
                log.error(
                    "projecting the log failed (%s); answering from position %d",
                    failure,
                    read_model.position(),
                )
            self.projection_failure = failure
        else:
            if self.projection_failure is not None:
                log.warning("projecting the log works again; the read models are caught up")
            self.projection_failure = None

    def close(self) -> None:
        if self._read_model is not None:
            self._read_model.close()
        if self._ledger is not None:
            self._ledger.close()
