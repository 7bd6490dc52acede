"""An erasure whose wipe is held up gives up after `wipe_timeout` seconds, not before and not
much after, with one line saying the erasure is recorded and what to do; erasing again once
the other transaction ends finishes the wipe. On PostgreSQL the hold-up is a table lock taken
by a transaction that began after the erasure (it cannot read the deleted rows, but VACUUM
FULL must wait for it); on SQLite, a read transaction holding the write-ahead log. Found by
mutation testing (scripts/mutation.py)."""

from __future__ import annotations

import json
import time
from contextlib import ExitStack
from types import SimpleNamespace
from uuid import UUID

import pytest

from ledger import Ledger, LedgerError
from ledger.importer import Importer
from ledger.storage import recorders
from tests.helpers import event_names
from tests.test_erasure_on_disk import (
    ADMIN,
    OPEN_TRANSACTION,
    ann,
    on_disk,
    process_holding,
    traces,
)

__all__ = ["ann"]  # the fixture, used by name

# Locks a table the erasure deletes from, in a transaction that keeps no snapshot (READ
# COMMITTED, idle between statements), so nothing it holds could read the deleted rows; it
# gives the lock up after 20 s at most, so a wipe that waits for it forever ends too.
LOCK_HOLDER = """
import sys, threading, psycopg
conn = psycopg.connect(sys.argv[1].replace("+psycopg", ""))
conn.execute("LOCK TABLE ledger_claims IN ACCESS SHARE MODE")
print("ready", flush=True)
done = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
done.wait(20)
conn.rollback()
"""
# Over a second, so a busy timeout of the seconds plus 1000 ms (not times 1000) gives up early.
TIMEOUT = 1.5
REASON = "GDPR request 4711"


def erase_timed(led: Ledger, user_id: UUID) -> tuple[str, float]:
    started = time.monotonic()
    with pytest.raises(LedgerError) as error:
        led.erase_user(user_id, actor=ADMIN, reason=REASON)
    return str(error.value), time.monotonic() - started


def finish(led: Ledger, user_id: UUID, url: str, needles: dict[str, bytes]) -> None:
    """Erasing again records nothing and finishes the wipe."""
    count = len(event_names(led))
    led.wipe_timeout = Ledger.wipe_timeout
    assert led.erase_user(user_id, actor=ADMIN, reason=REASON) is False
    assert len(event_names(led)) == count
    assert on_disk(url, needles) == set()


@pytest.mark.parametrize("url", ["postgres"], indirect=True)
def test_a_table_lock_holds_up_the_wipe_for_the_timeout_then_it_says_so(
    url: str, ann: tuple[Ledger, UUID]
) -> None:
    led, user_id = ann
    needles = traces(led, user_id)
    # the wipe first waits for older transactions of the whole server (other tests' too):
    # 2 s leaves them time to end, so what holds it up at the deadline is the lock
    led.wipe_timeout = 2.0
    with process_holding(LOCK_HOLDER, url):
        message, waited = erase_timed(led, user_id)
        assert event_names(led)[-1] == "UserErased"  # the erasure itself stands
    assert message == (
        f"the erasure of user {user_id} is recorded, but the deleted key and personal data "
        "are not yet wiped from the disk: other transactions held the tables "
        "ledger_user_keys, ledger_claims, ledger_credentials for over 2 s; erase user "
        f"{user_id} again (it records nothing more and finishes the wipe) once those "
        "transactions have ended"
    )
    assert 2.0 - 0.01 <= waited < 2.0 + 10
    finish(led, user_id, url, needles)


@pytest.mark.parametrize("url", ["postgres", "sqlite"], indirect=True)
def test_an_open_transaction_holds_up_the_wipe_for_the_timeout(
    url: str, ann: tuple[Ledger, UUID]
) -> None:
    led, user_id = ann
    needles = traces(led, user_id)
    led.wipe_timeout = TIMEOUT
    with process_holding(OPEN_TRANSACTION, url):
        message, waited = erase_timed(led, user_id)
        assert event_names(led)[-1] == "UserErased"
    assert "\n" not in message
    assert message.startswith(f"the erasure of user {user_id} is recorded, but ")
    assert " for over 1.5 s" in message
    assert TIMEOUT - 0.01 <= waited < TIMEOUT + 10
    finish(led, user_id, url, needles)


@pytest.mark.parametrize("url", ["sqlite"], indirect=True)
def test_an_erasure_applied_in_a_batch_is_wiped_once_the_batch_is_saved(
    url: str, ann: tuple[Ledger, UUID]
) -> None:
    led, user_id = ann
    needles = traces(led, user_id)
    line = json.dumps({"command": "erase_user", "user": str(user_id), "reason": REASON})
    [result] = Importer(led, actor=ADMIN).apply([(1, line)]).results
    assert (result.status, result.error) == ("applied", None)
    assert on_disk(url, needles) == set()


@pytest.mark.parametrize("url", ["postgres"], indirect=True)
def test_a_zero_wipe_timeout_gives_up_on_a_table_lock_at_once(
    url: str, ann: tuple[Ledger, UUID]
) -> None:
    """With no time left, VACUUM FULL still gets a lock timeout of 1 ms: 0 would mean no limit,
    and the wipe would wait for the lock as long as its holder keeps it."""
    led, user_id = ann
    led.wipe_timeout = 0.0
    lock_message = "other transactions held the tables "
    messages: list[str] = []
    with process_holding(LOCK_HOLDER, url):
        # other tests' transactions on the server end the wipe before it reaches the lock:
        # erase again (recording nothing more) until one attempt finds none of them open
        for _ in range(100):
            message, waited = erase_timed(led, user_id)
            messages.append(message)
            assert waited < 5
            if lock_message in message:
                break
            time.sleep(0.05)
    assert lock_message in messages[-1], messages[-1]
    assert " for over 0 s;" in messages[-1]
    assert event_names(led).count("UserErased") == 1


@pytest.mark.parametrize("url", ["postgres"], indirect=True)
def test_the_wipe_looks_again_for_older_transactions_every_50_ms(
    url: str, ann: tuple[Ledger, UUID]
) -> None:
    """An older transaction that ends while the wipe waits lets it go on within a poll; the
    pause between looks is what the wipe passes to its time module's sleep."""
    led, user_id = ann
    needles = traces(led, user_id)
    pauses: list[float] = []
    holder = ExitStack()

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 3:
            holder.close()  # the older transaction ends
        time.sleep(seconds)

    clock = SimpleNamespace(monotonic=time.monotonic, sleep=sleep)
    with pytest.MonkeyPatch.context() as patch, holder:
        patch.setattr(recorders, "time", clock)
        holder.enter_context(process_holding(OPEN_TRANSACTION, url))
        assert led.erase_user(user_id, actor=ADMIN, reason=REASON) is True
    assert len(pauses) >= 3
    assert max(pauses) <= 0.05
    assert on_disk(url, needles) == set()
