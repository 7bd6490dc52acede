"""The event store's SQLite connections (`LedgerSQLiteConnectionPool`): eventsourcing's, but
keeping their prepared statements. The file is in WAL mode as eventsourcing leaves it, and a
statement kept prepared holds no read transaction open after its query: an erasure's wipe
(a checkpoint that waits for every reader) still finishes at once after reads and writes."""

from __future__ import annotations

import sqlite3
from uuid import UUID

import pytest

from ledger import Ledger
from ledger.storage import chain
from ledger.storage.recorders import LedgerSQLiteConnectionPool
from tests.conftest import ADMIN

SQLITE_ONLY = pytest.mark.parametrize("url", ["sqlite"], indirect=True)


@SQLITE_ONLY
def test_the_event_store_is_in_wal_mode_and_keeps_statements(led: Ledger, url: str) -> None:
    assert isinstance(led.recorder.datastore.pool, LedgerSQLiteConnectionPool)
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@SQLITE_ONLY
def test_kept_statements_leave_no_reader_behind(led: Ledger, acme: UUID) -> None:
    ann = led.create_user("ann@example.org", account_id=acme, actor=ADMIN)
    for _ in range(3):
        led.record_login(ann)
        assert led.grant_role(ann, "admin", actor=ADMIN)
        assert led.revoke_role(ann, "admin", actor=ADMIN)
        assert not led.revoke_role(ann, "admin", actor=ADMIN)  # confirmed by a query
        led.side.select_one(chain.SELECT_HEAD, ())  # a query fetched in part
        led.recorder.select_events(ann)
    led.erase_user(ann, actor=ADMIN, reason="asked to")  # wipes: every reader must be done
    led.side.wipe_deleted(timeout=0.5)
