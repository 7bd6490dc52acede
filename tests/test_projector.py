"""The projector's guarantees: a page and its position commit together, so crashes, handler
errors and concurrent writers never lose or double-apply an event."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from uuid import UUID

import psycopg
import pytest

from ledger import Ledger
from ledger.domain import User
from projections import ProjectionError, ReadModel
from projections import projector as projector_module
from tests import workers
from tests.conftest import ADMIN, create_pg_database
from tests.readmodel_dump import dump, position
from tests.test_concurrency import run_workers

pytestmark = pytest.mark.slow


def record_history(led: Ledger, acme: UUID, users: int, logins: int) -> int:
    ids = [
        led.create_user(f"user{i}@acme.org", account_id=acme, actor=ADMIN, roles=["admin"])
        for i in range(users)
    ]
    for round_ in range(logins):
        for user_id in ids:
            led.record_login(user_id)
            if round_ % 7 == 3:
                led.revoke_role(user_id, "admin", actor=ADMIN)
                led.grant_role(user_id, "admin", actor=ADMIN)
    return int(led.recorder.max_notification_id())


def assert_equals_rebuild(url: str) -> None:
    live = ReadModel(url)
    try:
        live.catch_up()
        caught_up = dump(live)
    finally:
        live.close()
    fresh = ReadModel(url)
    try:
        fresh.rebuild()
        rebuilt = dump(fresh)
    finally:
        fresh.close()
    for table in rebuilt:
        assert caught_up[table] == rebuilt[table], table


def test_an_error_mid_page_rolls_back_the_page_and_its_position(
    led: Ledger, acme: UUID, rm: ReadModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    ann = led.create_user("ann@acme.org", account_id=acme, actor=ADMIN)
    rm.catch_up()
    before, before_position = dump(rm), position(rm)
    led.grant_role(ann, "admin", actor=ADMIN)
    led.record_login(ann)
    led.grant_role(ann, "consultant", actor=ADMIN)
    original = projector_module._HANDLERS[User.LoginRecorded]

    def failing(*args: object) -> None:
        raise RuntimeError("handler crashed")

    monkeypatch.setitem(projector_module._HANDLERS, User.LoginRecorded, failing)
    with pytest.raises(ProjectionError, match="handler crashed"):
        rm.catch_up()
    assert position(rm) == before_position
    assert dump(rm) == before  # the grant before the failing event was rolled back too
    monkeypatch.setitem(projector_module._HANDLERS, User.LoginRecorded, original)
    assert rm.catch_up() == 3
    assert rm.roles(ann) == {"admin", "consultant"}
    assert rm.get_user(ann).login_count == 1  # type: ignore[union-attr]
    assert_equals_rebuild(led.url)


CATCH_UP = """
import sys
from projections import ReadModel
rm = ReadModel(sys.argv[1], page_size=20)
while rm.projector.project_page()[0]:
    print("page", flush=True)
print("done", flush=True)
"""


def test_kill_9_mid_catch_up_neither_loses_nor_doubles(led: Ledger, acme: UUID) -> None:
    total = record_history(led, acme, users=40, logins=25)
    rng = random.Random(42)
    partial = 0
    for _ in range(4):
        child = subprocess.Popen(
            [sys.executable, "-c", CATCH_UP, led.url],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).parent.parent,
        )
        assert child.stdout is not None
        for _ in range(rng.randint(1, 15)):  # let a few pages commit, then kill at any instant
            assert child.stdout.readline().strip() == "page"
        time.sleep(rng.uniform(0, 0.01))
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        rm = ReadModel(led.url)
        try:
            reached = position(rm)
        finally:
            rm.close()
        partial += 0 < reached < total
    assert partial >= 1, "no kill landed in the middle of a catch-up"
    assert_equals_rebuild(led.url)


def test_four_writers_while_following(led: Ledger, acme: UUID) -> None:
    rounds = 10
    for worker in range(4):
        for i in range(rounds):
            led.define_role(f"role-{worker}-{i}", actor=ADMIN)
    ann = led.create_user("ann@acme.org", account_id=acme, actor=ADMIN)
    follower = ReadModel(led.url, page_size=7)
    stop = threading.Event()
    thread = threading.Thread(target=follower.follow, args=(stop, 0.05))
    thread.start()
    try:
        outcomes = run_workers(
            workers.hammer_one_user, *[(led.url, ann, w, rounds) for w in range(4)]
        )
        assert set(outcomes) == {"ok True"}
        deadline = time.monotonic() + 60
        while position(follower) < led.recorder.max_notification_id():
            assert time.monotonic() < deadline, "follow() did not catch up"
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert len(follower.roles(ann)) == 4 * rounds + 0
    assert follower.get_user(ann).login_count == 4 * rounds  # type: ignore[union-attr]
    follower.close()
    assert_equals_rebuild(led.url)


def test_postgres_ids_commit_in_order(postgres_server: str) -> None:
    """While one transaction holds the events table's insert lock, no later id can commit, so
    the projector never passes an id that a concurrent transaction may still commit."""
    url, drop = create_pg_database(postgres_server)
    led = Ledger(url)
    rm = ReadModel(url)
    try:
        acme = led.create_account("Acme", actor=ADMIN)
        rm.catch_up()
        before = led.recorder.max_notification_id()
        dsn = url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn) as blocker:
            blocker.execute("LOCK TABLE ledger_events IN EXCLUSIVE MODE")  # an insert in flight
            writer = threading.Thread(
                target=lambda: led.create_user("late@acme.org", account_id=acme, actor=ADMIN)
            )
            writer.start()
            time.sleep(0.5)
            assert writer.is_alive()  # the later writer waits for the earlier transaction
            assert rm.catch_up() == 0
            assert led.recorder.max_notification_id() == before
            blocker.rollback()
        writer.join(timeout=30)
        assert rm.catch_up() == 2  # UserCreated, UserJoined
        assert rm.find_user_by_email("late@acme.org") is not None
    finally:
        rm.close()
        led.close()
        drop()


def test_a_new_projector_finds_the_account_of_users_projected_before(
    url: str, led: Ledger, acme: UUID
) -> None:
    ann = led.create_user("ann@acme.org", account_id=acme, actor=ADMIN)
    first = ReadModel(url)
    try:
        first.catch_up()
    finally:
        first.close()
    led.record_login(ann)  # projected by a projector that never saw ann's creation
    led.grant_role(ann, "admin", actor=ADMIN)
    second = ReadModel(url)
    try:
        assert second.catch_up() == 2
        events = second.audit_log(account_id=acme)["event"].tolist()
    finally:
        second.close()
    assert events[-2:] == ["LoginRecorded", "RoleGranted"]
