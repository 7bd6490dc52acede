"""`ledger audit stream --to amqp://... --queue Q` against a real RabbitMQ (127.0.0.1:5672,
guest/guest, or LEDGER_TEST_AMQP): at least once, in log order, with the position as the
message id; across kill -9 at random instants every position arrives, in order, repeats only
of a restart's tail and each one the same message; bad targets refused, credentials unshown."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator

import aio_pika
import pytest

from ledger import Ledger
from ledger.audit import amqp
from tests.helpers import cannot_run, cli, one_line
from tests.test_audit import raw
from tests.test_stream import LEDGER, history

AMQP_URL = os.environ.get("LEDGER_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/")


async def _reachable() -> str | None:
    try:
        connection = await asyncio.wait_for(aio_pika.connect(AMQP_URL), 5)
    except Exception as error:
        return str(error) or type(error).__name__
    await connection.close()
    return None


@pytest.fixture(scope="session")
def rabbitmq() -> str:
    problem = asyncio.run(_reachable())
    if problem is not None:
        cannot_run(f"RabbitMQ is not reachable at {AMQP_URL}: {problem}")
    return AMQP_URL


@pytest.fixture
def queue(rabbitmq: str) -> Iterator[str]:
    """A queue of this test's own, deleted afterwards."""
    name = f"ledger-test-{uuid.uuid4().hex[:12]}"
    yield name
    asyncio.run(_delete(name))


async def _delete(name: str) -> None:
    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        await channel.queue_delete(name)
    finally:
        await connection.close()


def messages(name: str) -> list[tuple[int, str, dict[str, object]]]:
    """Every message in the queue, in queue order: (message id, chain link, body), consumed."""

    async def drain() -> list[tuple[int, str, dict[str, object]]]:
        connection = await aio_pika.connect(AMQP_URL)
        found = []
        try:
            channel = await connection.channel()
            declared = await channel.declare_queue(name, durable=True)
            while (message := await declared.get(no_ack=True, fail=False)) is not None:
                assert message.message_id is not None
                link = str((message.headers or {}).get(amqp.CHAIN_LINK))
                found.append((int(message.message_id), link, json.loads(message.body)))
        finally:
            await connection.close()
        return found

    return asyncio.run(drain())


def stream(led: Ledger, name: str, code: int = 0) -> str:
    result = cli("--db", led.url, "audit", "stream", "--to", AMQP_URL, "--queue", name, code=code)
    return one_line(result)


def test_every_event_goes_once_in_log_order_with_its_position(led: Ledger, queue: str) -> None:
    history(led, 5)
    head = led.recorder.max_notification_id()
    line = stream(led, queue)
    assert line == (
        f"published {head} events to amqp://127.0.0.1:5672/ queue {queue}; cursor at "
        f"position {head}"
    )
    assert "guest" not in line
    assert "published 0 events" in stream(led, queue)  # nothing new: the cursor
    history(led, 1)
    now = led.recorder.max_notification_id()
    assert f"published {now - head} events" in stream(led, queue)
    found = messages(queue)
    assert [position for position, _, _ in found] == list(range(1, now + 1))
    for position, link, body in found:
        metadata = body["metadata"]
        assert isinstance(metadata, dict) and metadata["sequence"] == position
        assert {"name": "chain_link", "value": link} in metadata["tags"]


def test_a_lost_cursor_repeats_the_tail_with_the_same_ids(led: Ledger, queue: str) -> None:
    """RabbitMQ cannot say what it already holds: without the cursor, the restart publishes
    again, each message with its position as id, for the consumer to drop (at least once)."""
    history(led, 3)
    head = led.recorder.max_notification_id() or 0
    stream(led, queue)
    raw(led, "DELETE FROM ledger_stream_cursors")  # as if killed before writing it
    assert f"published {head} events" in stream(led, queue)
    found = messages(queue)
    assert [p for p, _, _ in found] == [*range(1, head + 1), *range(1, head + 1)]
    assert found[:head] == found[head:]  # the very same messages


def test_kill_9_at_random_instants_then_restart_misses_nothing(led: Ledger, queue: str) -> None:
    history(led, 600)  # 1,800 events and more: streamed over more than one poll of the queue
    head = led.recorder.max_notification_id() or 0
    command = [LEDGER, "--db", led.url, "audit", "stream", "--to", AMQP_URL, "--queue", queue]
    chance = random.Random(os.environ.get("PYTEST_XDIST_WORKER", "") + queue)
    kills, found = 0, []
    for attempt in range(4):
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:  # until it publishes
            found.extend(messages(queue))  # a consumer, draining as it goes
            if found and found[-1][0] < head:
                break
            time.sleep(0.05)
        # the first kill comes at once: a later one may find the streamer done already
        time.sleep(chance.uniform(0.0, 0.3) if attempt else 0.0)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait()
        found.extend(messages(queue))
    final = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert final.returncode == 0, final.stderr
    found.extend(messages(queue))
    positions = [position for position, _, _ in found]
    assert kills >= 1
    assert sorted(set(positions)) == list(range(1, head + 1))  # nothing missed
    seen: dict[int, tuple[int, str, dict[str, object]]] = {}
    newest = 0
    for message in found:
        position = message[0]
        if position in seen:
            assert seen[position] == message  # a repeat is the same message
        else:
            assert position == newest + 1  # first arrivals in log order, no gap
            newest = position
            seen[position] = message
    repeats = len(positions) - head
    assert repeats <= kills * amqp.CURSOR_EVERY


USER, PASSWORD = "streamer", "Hunter2-pw"


@pytest.mark.parametrize(
    ("to", "name", "message"),
    [
        ("amqp://127.0.0.1:99999/", "q", "invalid to 'amqp://127.0.0.1:99999/'"),
        ("amqp://", "q", "invalid to 'amqp://'"),
        ("amqp://127.0.0.1:5672/a/b", "q", "a virtual host at most"),
        ("amqp://127.0.0.1:5672/?heartbeat=1", "q", "no query"),
        (f"amqp://{USER}:{PASSWORD}@127.0.0.1:5672/?x", "q", "'amqp://***@127.0.0.1:5672/?x'"),
        (f"amqp://{USER}:{PASSWORD}@127.0.0.1:1/", "q", "cannot publish to amqp://127.0.0.1:1/"),
        (f"amqp://{USER}:{PASSWORD}@127.0.0.1:5672/", "q", "ACCESS_REFUSED"),
        (AMQP_URL, "a b", "invalid queue 'a b'"),
        (AMQP_URL, "q\x00", "invalid queue 'q\\x00'"),
        (AMQP_URL, "x" * 256, "invalid queue"),
        (AMQP_URL, "amq.mine", "reserved by RabbitMQ"),
        (f"amqp://{USER}:{PASSWORD}@ex..ample:5672/", "q", "host 'ex..ample' is not a host name"),
        (f"amqp://{USER}:{PASSWORD}@{'a' * 64}.example/", "q", f"host '{'a' * 64}.example'"),
        (f"amqp://{USER}:{PASSWORD}@.:5672/", "q", "host '.' is not a host name"),
        # the vhost shown as it is: `/out-fix-none`, not `out-fix-none`
        (
            f"amqp://{USER}:{PASSWORD}@127.0.0.1:5672/%2Fout-fix-none",
            "q",
            "cannot publish to amqp://127.0.0.1:5672/%2Fout-fix-none:",
        ),
    ],
)
def test_bad_targets_are_refused(
    led: Ledger, rabbitmq: str, to: str, name: str, message: str
) -> None:
    history(led, 1)
    result = cli("--db", led.url, "audit", "stream", "--to", to, "--queue", name, code=1)
    line = one_line(result)
    assert message in line
    for secret in (PASSWORD, USER):
        assert secret not in result.stdout + result.stderr
    row = led.side.select_one("SELECT count(*) AS n FROM ledger_stream_cursors", ())
    assert row is not None and row["n"] == 0


def test_subject_and_queue_go_with_their_broker(led: Ledger) -> None:
    for args in (
        ("--to", AMQP_URL, "--subject", "a.b"),
        ("--to", AMQP_URL),
        ("--to", "nats://127.0.0.1:4222", "--queue", "q"),
        ("--to", AMQP_URL, "--queue", "q", "--subject", "a.b"),
    ):
        result = cli("--db", led.url, "audit", "stream", *args, code=2)
        assert "guest" not in result.stdout + result.stderr


def test_a_queue_declared_otherwise_is_refused_in_one_line(led: Ledger, queue: str) -> None:
    async def transient() -> None:
        connection = await aio_pika.connect(AMQP_URL)
        try:
            await (await connection.channel()).declare_queue(queue, durable=False)
        finally:
            await connection.close()

    asyncio.run(transient())
    history(led, 1)
    line = stream(led, queue, code=1)
    assert "cannot publish to amqp://127.0.0.1:5672/" in line and "PRECONDITION_FAILED" in line


def test_vhosts_that_differ_by_a_slash_keep_their_own_cursors() -> None:
    """`x` and `/x`, `/` and `//` are different vhosts: each its own cursor, shown as it is."""
    vhosts = {
        "amqp://u:p@h:5672/x": "amqp://h:5672/x",
        "amqp://u:p@h:5672/%2Fx": "amqp://h:5672/%2Fx",
        "amqp://u:p@h:5672/": "amqp://h:5672/",
        "amqp://u:p@h:5672/%2F%2F": "amqp://h:5672/%2F%2F",
        "amqp://u:p@h:5672/a%2Cb": "amqp://h:5672/a%2Cb",
    }
    names = set()
    for url, shown in vhosts.items():
        found = amqp.target(url, "q")
        assert found.shown == shown and "u:p" not in found.cursor_name
        names.add(found.cursor_name)
    assert len(names) == len(vhosts)
    # the default vhost, however written, is one vhost with one cursor (named as before)
    same = {amqp.target(url, "q").cursor_name for url in ("amqp://h/", "amqp://h", "amqp://h/%2F")}
    assert same == {"amqp://h:5672//q"}


def test_a_queue_deleted_while_streaming_stops_it_and_the_restart_misses_nothing(
    led: Ledger, queue: str
) -> None:
    """RabbitMQ returns a message for a queue that is gone: the streamer stops in one line,
    exit 1, its cursor at the last confirmed event; run again once the queue is back, it
    publishes from there: no position lost."""
    history(led, 3)
    head = led.recorder.max_notification_id() or 0
    command = [LEDGER, "--db", led.url, "audit", "stream", "--to", AMQP_URL, "--queue", queue]
    follow = [*command, "--follow", "--interval", "0.1"]
    process = subprocess.Popen(follow, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    found: list[tuple[int, str, dict[str, object]]] = []
    deadline = time.monotonic() + 60
    while len(found) < head and time.monotonic() < deadline:
        found.extend(messages(queue))
        time.sleep(0.05)
    asyncio.run(_delete(queue))  # by an operator, an expiry policy, a consumer's cleanup
    history(led, 2)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 1, err
    # the progress lines of --follow, then the one line saying why it stopped
    lines = err.strip().splitlines()
    assert "Traceback" not in err and all(line.startswith("published ") for line in lines[:-1])
    assert lines[-1] == (
        f"error: cannot publish to amqp://127.0.0.1:5672/ queue {queue}: the broker returned "
        f"the event at position {head + 1} unrouted (312 NO_ROUTE: no queue {queue}, "
        f"deleted?); stopped with the cursor at position {head}, the last confirmed: run again "
        "once the queue is back"
    )
    assert "guest" not in err
    now = led.recorder.max_notification_id() or 0
    assert messages(queue) == []  # declared again, by its consumer: empty
    restart = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert restart.returncode == 0, restart.stderr
    assert f"published {now - head} events" in restart.stdout + restart.stderr
    found.extend(messages(queue))
    assert [position for position, _, _ in found] == list(range(1, now + 1))  # no gap
