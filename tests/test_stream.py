"""`ledger audit stream` against a real NATS server with JetStream (127.0.0.1:4222, or
LEDGER_TEST_NATS): every position exactly once on the stream, across kill -9 at random
instants; into the stream that covers the subject; bad targets refused."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import nats
import pytest

from ledger import Conflict, Ledger
from ledger.audit import stream as streaming
from tests.conftest import ADMIN
from tests.helpers import cannot_run, cli, one_line
from tests.test_audit import raw

NATS_URL = os.environ.get("LEDGER_TEST_NATS", "nats://127.0.0.1:4222")
LEDGER = str(Path(sys.executable).parent / "ledger")


async def _reachable() -> str | None:
    try:
        connection = await nats.connect(NATS_URL, connect_timeout=2, allow_reconnect=False)
    except Exception as error:
        return str(error) or type(error).__name__
    try:
        await connection.jetstream().account_info()
    except Exception as error:
        return f"JetStream: {error}"
    finally:
        await connection.close()
    return None


@pytest.fixture(scope="session")
def nats_server() -> str:
    problem = asyncio.run(_reachable())
    if problem is not None:
        cannot_run(f"NATS with JetStream is not reachable: {problem}")
    return NATS_URL


@pytest.fixture
def subject(nats_server: str) -> Any:
    """A subject of this test's own; its streams are deleted afterwards."""
    name = f"ledgertest.{uuid.uuid4().hex[:12]}"
    yield name
    asyncio.run(_delete_streams(name))


async def _delete_streams(subject: str) -> None:
    connection = await nats.connect(NATS_URL)
    jetstream = connection.jetstream()
    try:
        while True:
            try:
                name = await jetstream.find_stream_name_by_subject(subject)
            except nats.js.errors.NotFoundError:
                return
            await jetstream.delete_stream(name)
    finally:
        await connection.close()


async def _messages(subject: str) -> list[tuple[str, dict[str, Any]]]:
    """Every message on the subject: (its Nats-Msg-Id, its OCSF payload)."""
    connection = await nats.connect(NATS_URL)
    jetstream = connection.jetstream()
    try:
        name = await jetstream.find_stream_name_by_subject(subject)
        state = (await jetstream.stream_info(name)).state
        found = []
        for sequence in range(state.first_seq, state.last_seq + 1):
            message = await jetstream.get_msg(name, sequence)
            if message.subject == subject:
                headers = message.headers or {}
                found.append((headers["Nats-Msg-Id"], json.loads(message.data or b"")))
        return found
    finally:
        await connection.close()


def messages(subject: str) -> list[tuple[str, dict[str, Any]]]:
    return asyncio.run(_messages(subject))


def history(led: Ledger, users: int) -> None:
    """Four events a user: creation, joining the account, a grant, a login."""
    acme = led.account_id_for_name("Acme") or led.create_account("Acme", actor=ADMIN)
    with contextlib.suppress(Conflict):
        led.define_role("consultant", actor=ADMIN)
    for _ in range(users):
        user = led.create_user(f"{uuid.uuid4().hex[:10]}@acme.org", account_id=acme, actor=ADMIN)
        led.grant_role(user, "consultant", actor=ADMIN)
        led.record_login(user, ip="192.0.2.1")


async def _count(subject: str) -> int:
    connection = await nats.connect(NATS_URL)
    jetstream = connection.jetstream()
    try:
        name = await jetstream.find_stream_name_by_subject(subject)
        return int((await jetstream.stream_info(name)).state.messages)
    except nats.js.errors.NotFoundError:
        return 0
    finally:
        await connection.close()


def stream(led: Ledger, subject: str, code: int = 0) -> str:
    result = cli(
        "--db", led.url, "audit", "stream", "--to", NATS_URL, "--subject", subject, code=code
    )
    return result.stderr.strip()


def test_every_event_is_published_once_with_its_position(led: Ledger, subject: str) -> None:
    history(led, 20)
    head = led.recorder.max_notification_id()
    assert f"published {head} events" in stream(led, subject)
    found = messages(subject)
    assert [int(msg_id) for msg_id, _ in found] == list(range(1, head + 1))
    assert all(int(msg_id) == event["metadata"]["sequence"] for msg_id, event in found)
    assert {event["class_uid"] for _, event in found} == {3001, 3002, 3004}
    assert "published 0 events" in stream(led, subject)  # nothing new
    history(led, 2)
    now = led.recorder.max_notification_id()
    assert f"published {now - head} events" in stream(led, subject)
    assert [int(msg_id) for msg_id, _ in messages(subject)] == list(range(1, now + 1))


def test_the_stream_covering_the_subject_is_used(led: Ledger, subject: str) -> None:
    async def make() -> None:
        connection = await nats.connect(NATS_URL)
        await connection.jetstream().add_stream(
            name=f"MINE_{subject.replace('.', '_')}", subjects=[f"{subject}.>", subject]
        )
        await connection.close()

    asyncio.run(make())
    history(led, 2)
    assert f"(stream MINE_{subject.replace('.', '_')})" in stream(led, subject)


def test_a_cursor_lost_after_the_acks_repeats_nothing(led: Ledger, subject: str) -> None:
    history(led, 5)
    stream(led, subject)
    raw(led, "DELETE FROM ledger_stream_cursors")  # as if killed before writing it
    assert "published 0 events" in stream(led, subject)
    counts = Counter(msg_id for msg_id, _ in messages(subject))
    assert set(counts.values()) == {1}


def test_a_subject_fed_by_another_log_is_refused(url: str, subject: str, tmp_path: Path) -> None:
    first = Ledger(url)
    history(first, 3)
    stream(first, subject)
    first.close()
    other = Ledger(f"sqlite:///{tmp_path / 'other.db'}")
    history(other, 4)
    refused = stream(other, subject, code=1)
    assert "which is not this log's event at that position" in refused
    other.close()


@pytest.mark.slow
def test_kill_9_at_random_instants_then_restart_publishes_each_position_once(
    led: Ledger, subject: str
) -> None:
    history(led, 400)
    head = led.recorder.max_notification_id()
    command = [LEDGER, "--db", led.url, "audit", "stream", "--to", NATS_URL, "--subject", subject]
    chance = random.Random(os.environ.get("PYTEST_XDIST_WORKER", "") + subject)
    kills = 0
    for attempt in range(5):
        before = asyncio.run(_count(subject))
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:  # until it publishes
            if asyncio.run(_count(subject)) > before:
                break
            time.sleep(0.05)
        # the first kill comes at once: a later one may find the streamer done already
        time.sleep(chance.uniform(0.0, 0.5) if attempt else 0.0)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait()
    final = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert final.returncode == 0, final.stderr
    counts = Counter(int(msg_id) for msg_id, _ in messages(subject))
    assert kills >= 1
    assert sorted(counts) == list(range(1, head + 1))
    assert set(counts.values()) == {1}


@pytest.mark.parametrize(
    ("to", "subject", "message"),
    [
        ("http://127.0.0.1:4222", "a.b", "invalid to 'http://127.0.0.1:4222'"),
        ("nats://", "a.b", "invalid to 'nats://'"),
        ("nats://u:pw@127.0.0.1:4222/x", "a.b", "invalid to 'nats://***@127.0.0.1:4222/x'"),
        ("nats://127.0.0.1:99999", "a.b", "invalid to"),
        ("nats://127.0.0.1:4222", "a b", "invalid subject 'a b'"),
        ("nats://127.0.0.1:4222", "a.*", "invalid subject 'a.*'"),
        ("nats://127.0.0.1:4222", "a..b", "invalid subject 'a..b'"),
        ("nats://127.0.0.1:4222", "a.b\x00", "invalid subject 'a.b\\x00'"),
        ("nats://127.0.0.1:4222", "x" * 256, "invalid subject"),
        ("nats://127.0.0.1:1", "a.b", "cannot publish to nats://127.0.0.1:1"),
    ],
)
def test_bad_targets_are_refused(led: Ledger, to: str, subject: str, message: str) -> None:
    history(led, 1)
    result = cli("--db", led.url, "audit", "stream", "--to", to, "--subject", subject, code=1)
    line = one_line(result)
    assert message in line and "pw" not in line
    row = led.side.select_one("SELECT count(*) AS n FROM ledger_stream_cursors", ())
    assert row is not None and row["n"] == 0


USER, PASSWORD = "streamer", "Hunter2-pw"


@pytest.mark.parametrize(
    ("to", "message"),
    [
        (f"nats://{USER}:{PASSWORD}@host:abc", "invalid to 'nats://***@host:abc': the port"),
        (f"nats://{USER}:{PASSWORD}@127.0.0.1:99999", "invalid to 'nats://***@127.0.0.1:99999'"),
        (f"nats://{USER}:{PASSWORD}@127.0.0.1:0", "invalid to 'nats://***@127.0.0.1:0': the port"),
        (
            f"nats://{USER}:p@{PASSWORD}@127.0.0.1:4222/p",
            "invalid to 'nats://***@127.0.0.1:4222/p'",
        ),
        (f"nats://{USER}:{PASSWORD}/x@127.0.0.1:4222", "invalid to 'nats://***@127.0.0.1:4222'"),
        (f"nats://{USER}:[{PASSWORD}@127.0.0.1:4222", "invalid to 'nats://***@127.0.0.1:4222'"),
        (f"nats://{USER}:{PASSWORD}@127.0.0.1:4222?q=1", "invalid to 'nats://***@127.0.0.1:4222?q"),
        (f"http://{USER}:{PASSWORD}@127.0.0.1:4222", "invalid to 'http://***@127.0.0.1:4222'"),
        (f"nats:{USER}:{PASSWORD}@127.0.0.1:4222", "invalid to '***@127.0.0.1:4222'"),
        (f"nats://{USER}:{PASSWORD}@", "invalid to 'nats://***@'"),
        (f"nats://{PASSWORD}@127.0.0.1:1", "cannot publish to nats://127.0.0.1:1"),
        (f"nats://{USER}:{PASSWORD}@127.0.0.1:1", "cannot publish to nats://127.0.0.1:1"),
    ],
)
def test_credentials_in_a_refused_target_are_never_shown(
    led: Ledger, to: str, message: str
) -> None:
    history(led, 1)
    result = cli("--db", led.url, "audit", "stream", "--to", to, "--subject", "a.b", code=1)
    assert message in one_line(result)
    for secret in (PASSWORD, USER):
        assert secret not in result.stdout + result.stderr
    row = led.side.select_one("SELECT count(*) AS n FROM ledger_stream_cursors", ())
    assert row is not None and row["n"] == 0


def test_a_target_keeps_its_credentials_out_of_its_repr() -> None:
    to = streaming.target(f"nats://{USER}:{PASSWORD}@127.0.0.1:4222", "a.b")
    assert to.shown == "nats://127.0.0.1:4222"
    assert PASSWORD not in repr(to) and USER not in repr(to)


def test_follow_publishes_new_events_until_stopped(led: Ledger, subject: str) -> None:
    history(led, 2)
    to = streaming.target(NATS_URL, subject)
    stop = threading.Event()
    follower = threading.Thread(
        target=streaming.stream,
        args=(led, to),
        kwargs={"follow": True, "interval": 0.1, "stop": stop},
    )
    follower.start()
    try:
        history(led, 3)
        head = led.recorder.max_notification_id()
        deadline = time.monotonic() + 60
        while asyncio.run(_count(subject)) < head and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        follower.join(timeout=30)
    assert not follower.is_alive()
    assert [int(msg_id) for msg_id, _ in messages(subject)] == list(range(1, head + 1))
    assert streaming.cursor(led, to) == head


def test_follow_on_the_command_line_says_published_once_per_new_batch(
    led: Ledger, subject: str
) -> None:
    """`--follow` prints a line when a poll published something, not the running total again
    at every poll."""
    history(led, 2)
    command = [LEDGER, "--db", led.url, "audit", "stream", "--to", NATS_URL, "--subject", subject]
    process = subprocess.Popen(
        [*command, "--follow", "--interval", "0.05"], stderr=subprocess.PIPE, text=True
    )
    try:
        first = led.recorder.max_notification_id()
        deadline = time.monotonic() + 60
        while asyncio.run(_count(subject)) < first and time.monotonic() < deadline:
            time.sleep(0.05)
        history(led, 1)
        head = led.recorder.max_notification_id()
        while asyncio.run(_count(subject)) < head and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # about ten more polls that find nothing
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    totals = [int(line.split()[1]) for line in stderr.splitlines() if line.startswith("published")]
    # the new events may land over two polls (history() runs several commands)
    assert totals[0] == first and totals[-1] == head, stderr
    assert totals == sorted(set(totals)), stderr  # no total said twice
