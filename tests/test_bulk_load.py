"""A long catch-up from an empty read model leaves out the indexes only queries use and builds
them at its end. What it leaves must equal a catch-up with every index in place, whether it
ends normally, fails half-way and is finished by another catch-up, or meets an erasure."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import event, inspect, select

from ledger import Ledger
from ledger.domain import User
from projections import ProjectionError, ReadModel
from projections import projector as projector_module
from projections import tables as t
from tests.conftest import ADMIN
from tests.readmodel_dump import dump
from tests.test_projector import record_history

ALL_INDEXES = {index.name for table in t.READ_MODEL_TABLES for index in table.indexes}
QUERY_INDEXES = {index.name for index in t.QUERY_INDEXES}


def indexes(rm: ReadModel) -> set[str]:
    inspector = inspect(rm.engine)
    return {
        str(index["name"])
        for table in t.READ_MODEL_TABLES
        for index in inspector.get_indexes(table.name)
    }


def tracking_rows(rm: ReadModel) -> set[str]:
    with rm.engine.connect() as conn:
        return set(conn.execute(select(t.projection_tracking.c.name)).scalars())


def assert_finished(rm: ReadModel, expected: dict[str, Any]) -> None:
    """The read model as one projected with every index in place, its indexes all there."""
    assert dump(rm) == expected
    assert indexes(rm) == ALL_INDEXES
    assert projector_module.BULK_MARKER not in tracking_rows(rm)


def audit_fields(rm: ReadModel, aggregate_id: UUID | None) -> str:
    with rm.engine.connect() as conn:
        log = t.audit_log.c
        return repr(list(conn.execute(select(log.fields).where(log.aggregate_id == aggregate_id))))


class StatementLog:
    """The DDL a read model's writer sends."""

    def __init__(self, rm: ReadModel) -> None:
        self.statements: list[str] = []
        event.listen(rm._writer, "before_cursor_execute", self._seen)

    def _seen(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith(("CREATE INDEX", "DROP INDEX")):
            self.statements.append(statement.split("(")[0].strip())

    def count(self, prefix: str) -> int:
        return sum(statement.upper().startswith(prefix) for statement in self.statements)


def reference(url: str) -> dict[str, Any]:
    """The read model projected with every index in place."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(projector_module, "BULK_FROM", 10**9)
        rm = ReadModel(url)
        try:
            ddl = StatementLog(rm)
            rm.rebuild()
            assert ddl.count("DROP INDEX") == 0
            return dump(rm)
        finally:
            rm.close()


@pytest.fixture
def bulk_from_one(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(projector_module, "BULK_FROM", 1)
    yield


def test_a_long_first_catch_up_builds_the_query_indexes_at_its_end(
    url: str, led: Ledger, acme: UUID, bulk_from_one: None
) -> None:
    record_history(led, acme, users=6, logins=3)
    expected = reference(url)
    rm = ReadModel(url, page_size=7)
    try:
        ddl = StatementLog(rm)
        rm.rebuild()
        assert ddl.count("DROP INDEX") == len(QUERY_INDEXES)  # it did leave them out
        assert ddl.count("CREATE INDEX") >= len(QUERY_INDEXES)
        assert_finished(rm, expected)
        # a catch-up from a read model that is not empty never leaves indexes out
        led.record_login(led.user_id_for_email("user0@acme.org"))
        ddl.statements.clear()
        assert rm.catch_up() == 1
        assert ddl.statements == []
    finally:
        rm.close()


def test_a_short_log_is_projected_with_its_indexes(url: str, led: Ledger, acme: UUID) -> None:
    record_history(led, acme, users=2, logins=1)
    rm = ReadModel(url)
    try:
        ddl = StatementLog(rm)
        rm.rebuild()
        assert ddl.count("DROP INDEX") == 0
        assert indexes(rm) == ALL_INDEXES
    finally:
        rm.close()


def test_a_bulk_load_that_fails_is_finished_by_the_next_catch_up(
    url: str, led: Ledger, acme: UUID, bulk_from_one: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    record_history(led, acme, users=6, logins=3)
    expected = reference(url)
    original = projector_module._HANDLERS[User.LoginRecorded]
    calls = 0

    def failing(*args: Any) -> None:
        nonlocal calls
        calls += 1
        if calls >= 10:  # every time: the projector runs a failed page again to name the event
            raise RuntimeError("the projector's process dies")
        original(*args)

    monkeypatch.setitem(projector_module._HANDLERS, User.LoginRecorded, failing)
    rm = ReadModel(url, page_size=5)
    try:
        with pytest.raises(ProjectionError):
            rm.rebuild()
        assert 0 < rm.position() < led.recorder.max_notification_id()
        assert projector_module.BULK_MARKER in tracking_rows(rm)
        assert indexes(rm) == ALL_INDEXES - QUERY_INDEXES
    finally:
        rm.close()
    monkeypatch.setitem(projector_module._HANDLERS, User.LoginRecorded, original)
    again = ReadModel(url, page_size=5)
    try:
        again.catch_up()
        assert_finished(again, expected)
    finally:
        again.close()


def test_an_erasure_in_a_bulk_load_blanks_the_users_audit_rows(
    url: str, led: Ledger, acme: UUID, bulk_from_one: None
) -> None:
    record_history(led, acme, users=4, logins=2)
    erased = led.user_id_for_email("user1@acme.org")
    led.erase_user(erased, actor=ADMIN, reason="GDPR request")
    late = led.create_user("late@acme.org", account_id=acme, actor=ADMIN)
    led.record_login(late)
    expected = reference(url)
    rm = ReadModel(url, page_size=4)
    try:
        rm.rebuild()
        assert_finished(rm, expected)
        assert "user1@acme.org" not in audit_fields(rm, erased)
        kept = rm.audit_log(led.user_id_for_email("user0@acme.org"))  # stored sealed, opened
        assert "user0@acme.org" in kept.to_string()
    finally:
        rm.close()


def test_two_projectors_bulk_loading_at_once_agree(
    url: str, led: Ledger, acme: UUID, bulk_from_one: None
) -> None:
    record_history(led, acme, users=6, logins=3)
    expected = reference(url)
    emptied = ReadModel(url)
    try:
        with emptied._writer.begin() as conn:  # an empty read model, every index in place
            for table in t.READ_MODEL_TABLES:
                conn.execute(table.delete())
            tracking = t.projection_tracking
            conn.execute(tracking.delete().where(tracking.c.name != "schema-version"))
    finally:
        emptied.close()
    models = [ReadModel(url, page_size=3) for _ in range(2)]
    logs = [StatementLog(rm) for rm in models]
    errors: list[BaseException] = []

    def project(rm: ReadModel) -> None:
        try:
            rm.catch_up()
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=project, args=(rm,)) for rm in models]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        # one of them left the indexes out, and they were built once
        assert sum(log.count("DROP INDEX") for log in logs) == len(QUERY_INDEXES)
        assert sum(log.count("CREATE INDEX") for log in logs) == len(QUERY_INDEXES)
        assert_finished(models[0], expected)
    finally:
        for rm in models:
            rm.close()
