"""A catch-up reads and decodes the next page in a thread while it writes the current one. The
pages read ahead must change nothing: the same read models as pages read one by one, under
`stop` and `until`, with another process projecting at the same time; a failing event still
named; no thread left behind."""

from __future__ import annotations

import threading
from typing import Any
from uuid import UUID

import pytest

from ledger import Ledger
from ledger.domain import User
from ledger.storage.side_tables import SideWrite
from projections import ProjectionError, ReadModel
from projections import projector as projector_module
from projections import tables as t
from tests import workers
from tests.readmodel_dump import dump
from tests.test_audit import events_table
from tests.test_concurrency import run_workers
from tests.test_projector import assert_equals_rebuild, record_history

pytestmark = pytest.mark.slow

PAGE = 4  # pages small enough that a history spans many


def read_ahead_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("ledger-read-ahead")]


@pytest.fixture
def history(led: Ledger, acme: UUID) -> int:
    """About 90 events: over 20 pages of `PAGE`."""
    return record_history(led, acme, users=8, logins=8)


def logins(led: Ledger) -> list[int]:
    """The positions of the log's logins."""
    head = led.recorder.max_notification_id() or 0
    found = led.recorder.select_notifications(start=1, limit=head)
    return [n.id for n in found if n.topic.endswith("LoginRecorded")]


def emptied(url: str) -> None:
    """The read models emptied (tables, indexes and schema row kept): nothing projected."""
    rm = ReadModel(url)
    try:
        with rm._writer.begin() as conn:
            for table in t.READ_MODEL_TABLES:
                conn.execute(table.delete())
            tracking = t.projection_tracking
            conn.execute(tracking.delete().where(tracking.c.name != "schema-version"))
    finally:
        rm.close()


def caught_up(url: str, read_ahead: bool, **limits: Any) -> tuple[int, int, Any]:
    """From nothing projected, in pages of `PAGE`: how many events applied, the position
    reached, the read models."""
    emptied(url)
    rm = ReadModel(url, page_size=PAGE)
    try:
        rm.projector.read_ahead = read_ahead
        applied = rm.catch_up(**limits)
        return applied, rm.position(), dump(rm)
    finally:
        rm.close()


def test_a_catch_up_in_many_pages_reads_ahead_and_leaves_no_thread(
    url: str, led: Ledger, history: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    alive: list[int] = []  # read-ahead threads alive at each login projected
    original = projector_module._HANDLERS[User.LoginRecorded]

    def counting(*args: Any) -> None:
        alive.append(len(read_ahead_threads()))
        original(*args)

    monkeypatch.setitem(projector_module._HANDLERS, User.LoginRecorded, counting)
    rm = ReadModel(url, page_size=PAGE)
    try:
        assert rm.catch_up() == history
    finally:
        rm.close()
    assert len(alive) == len(logins(led)) and max(alive) == 1
    assert read_ahead_threads() == []
    assert_equals_rebuild(url)


@pytest.mark.parametrize("stop", [1, PAGE, PAGE + 1, 5 * PAGE, 5 * PAGE + 3, 10**6])
def test_stop_ends_where_pages_read_one_by_one_end(url: str, history: int, stop: int) -> None:
    ahead = caught_up(url, True, stop=stop)
    assert ahead[1] == min(stop, history)
    assert ahead == caught_up(url, False, stop=stop)


def test_until_leaves_out_what_pages_read_one_by_one_leave_out(
    url: str, led: Ledger, history: int
) -> None:
    positions = logins(led)
    notifications = led.recorder.select_notifications(start=positions[len(positions) // 2], limit=1)
    until = led.to_domain_events(notifications)[0].timestamp
    ahead = caught_up(url, True, until=until)
    assert 0 < ahead[0] < history == ahead[1]
    assert ahead == caught_up(url, False, until=until)
    assert caught_up(url, True, until=until, stop=history - 5) == caught_up(
        url, False, until=until, stop=history - 5
    )


def test_a_failing_event_in_a_page_read_ahead_is_named(
    url: str, led: Ledger, history: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = logins(led)[-3]  # far past the first page
    original = projector_module._HANDLERS[User.LoginRecorded]

    def failing(p: Any, *args: Any) -> None:
        if p.position_now == bad:
            raise RuntimeError("the handler failed")
        original(p, *args)

    monkeypatch.setitem(projector_module._HANDLERS, User.LoginRecorded, failing)
    emptied(url)
    rm = ReadModel(url, page_size=PAGE)
    try:
        with pytest.raises(ProjectionError) as raised:
            rm.catch_up()
        assert str(raised.value) == (
            f"cannot project event {bad} (User.LoginRecorded): RuntimeError: the handler failed"
        )
        assert rm.position() == (bad - 1) // PAGE * PAGE  # the last page projected whole
    finally:
        rm.close()
    assert read_ahead_threads() == []


def test_an_event_that_cannot_be_decoded_in_a_page_read_ahead_is_named(
    url: str, led: Ledger, history: int
) -> None:
    bad = logins(led)[-3]
    table, column = events_table(led)
    led.side.write_side(
        [SideWrite(f"UPDATE {table} SET state = ? WHERE {column} = ?", (b"{", bad))]
    )
    emptied(url)
    rm = ReadModel(url, page_size=PAGE)
    try:
        with pytest.raises(ProjectionError) as raised:
            rm.catch_up()
        assert str(raised.value).startswith(f"cannot project event {bad} (User.LoginRecorded): ")
        assert rm.position() == (bad - 1) // PAGE * PAGE
    finally:
        rm.close()
    assert read_ahead_threads() == []


def test_two_processes_catching_up_at_once_project_each_event_once(
    url: str, led: Ledger, acme: UUID
) -> None:
    total = record_history(led, acme, users=20, logins=12)
    outcomes = run_workers(workers.catch_up, (url, 3), (url, 5))
    applied = [int(outcome.removeprefix("ok ")) for outcome in outcomes]
    assert sum(applied) == total  # none twice, none left out
    assert_equals_rebuild(url)


def test_two_projectors_at_once_apply_each_event_once(
    url: str, led: Ledger, acme: UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even in a page rolled back: a page read ahead from a position the other projector has
    passed meanwhile is never applied (its rows would clash, and the page be run again)."""
    record_history(led, acme, users=10, logins=10)
    applied: list[int] = []
    original = projector_module._HANDLERS[User.LoginRecorded]

    def counting(p: Any, *args: Any) -> None:
        applied.append(p.position_now)
        original(p, *args)

    monkeypatch.setitem(projector_module._HANDLERS, User.LoginRecorded, counting)
    models = [ReadModel(url, page_size=size) for size in (3, 4)]
    errors: list[BaseException] = []

    def project(rm: ReadModel) -> None:
        try:
            rm.catch_up()
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=project, args=(rm,)) for rm in models]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for rm in models:
            rm.close()
    assert errors == []
    assert sorted(applied) == logins(led)
    assert read_ahead_threads() == []
