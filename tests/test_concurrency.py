"""Four processes at once: nothing lost or duplicated, one winner per unique value, and no
raw driver error."""

from __future__ import annotations

import multiprocessing
import sqlite3
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any
from uuid import UUID

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError, OperationalError, ProgrammingError

from ledger import Ledger
from ledger.application import is_contention
from ledger.audit import Audit
from ledger.storage import chain, side_tables
from ledger.storage.recorders import LedgerPostgresRecorder
from tests import workers
from tests.conftest import ADMIN
from tests.helpers import event_names, stored_state

PROCESSES = 4
pytestmark = pytest.mark.slow


def run_workers(function: Callable[..., list[str]], *args_per_worker: tuple[Any, ...]) -> list[str]:
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        # a worker that fails before the barrier must not leave the others waiting forever
        # (the pool's shutdown would then wait on them, past any test timeout)
        barrier = manager.Barrier(len(args_per_worker), timeout=120)
        with ProcessPoolExecutor(len(args_per_worker), mp_context=context) as pool:
            futures = [pool.submit(function, *args, barrier) for args in args_per_worker]
            outcomes = [outcome for future in futures for outcome in future.result(timeout=300)]
    raw = [o for o in outcomes if o.startswith("RAW")]
    assert not raw, raw
    return outcomes


def test_one_of_four_wins_an_email(led: Ledger, acme: UUID) -> None:
    outcomes = run_workers(
        workers.create_same_user,
        *[
            (led.url, acme, email)
            for email in (
                "same@example.org",
                "SAME@example.org",
                "Same@Example.org",
                "sAme@EXAMPLE.org",
            )
        ],
    )
    kinds = Counter(o.split()[0] for o in outcomes)
    assert kinds == {"ok": 1, "Conflict": PROCESSES - 1}
    assert event_names(led).count("UserCreated") == 1
    assert led.repository.get(acme).members == {led.user_id_for_email("same@example.org")}


def test_one_of_four_wins_an_email_across_four_accounts(led: Ledger) -> None:
    """Four users in four accounts: no aggregate in common, so no version clash serialises
    them; only the claim on the email can."""
    accounts = [led.create_account(f"Tenant {i}", actor=ADMIN) for i in range(PROCESSES)]
    emails = ("same@example.org", "SAME@example.org", "Same@Example.org", "sAme@EXAMPLE.org")
    outcomes = run_workers(
        workers.create_same_user,
        *[(led.url, account, email) for account, email in zip(accounts, emails, strict=True)],
    )
    kinds = Counter(o.split()[0] for o in outcomes)
    assert kinds == {"ok": 1, "Conflict": PROCESSES - 1}
    assert event_names(led).count("UserCreated") == 1
    claims = led.side.select_one(
        "SELECT COUNT(*) AS n FROM ledger_claims WHERE kind = ?", (side_tables.EMAIL,)
    )
    assert claims is not None and claims["n"] == 1
    winner = led.user_id_for_email("same@example.org")
    members = [led.repository.get(account).members for account in accounts]
    assert sorted(members, key=len) == [set(), set(), set(), {winner}]
    assert_chain_intact(led)


def test_one_of_four_wins_an_account_name(led: Ledger) -> None:
    outcomes = run_workers(workers.create_same_account, *[(led.url, "Same BV")] * PROCESSES)
    assert Counter(o.split()[0] for o in outcomes) == {"ok": 1, "Conflict": PROCESSES - 1}
    assert event_names(led).count("AccountCreated") == 1


def test_version_conflicts_on_one_user_are_retried(led: Ledger, acme: UUID) -> None:
    rounds = 15
    for worker in range(PROCESSES):
        for i in range(rounds):
            led.define_role(f"role-{worker}-{i}", actor=ADMIN)
    ann = led.create_user("ann@example.org", account_id=acme, actor=ADMIN)
    outcomes = run_workers(
        workers.hammer_one_user, *[(led.url, ann, w, rounds) for w in range(PROCESSES)]
    )
    assert set(outcomes) == {"ok True"}
    fresh = Ledger(led.url)
    try:
        user = fresh.repository.get(ann)
        assert user.login_count == PROCESSES * rounds
        assert len(user.roles) == PROCESSES * rounds
        assert user.version == 1 + 2 * PROCESSES * rounds
    finally:
        fresh.close()
    names = event_names(led)
    assert names.count("LoginRecorded") == PROCESSES * rounds
    assert_chain_intact(led)


def test_two_writers_repeating_the_same_commands_never_fail(led: Ledger, acme: UUID) -> None:
    """Each command lands or is refused as the ledger refuses it, never with a driver error:
    on PostgreSQL a ROLLBACK once sent in a pipeline made psycopg deallocate, one statement
    late, a statement it had just prepared ("prepared statement _pg3_N does not exist")."""
    users = [led.create_user(f"u{i}@example.org", account_id=acme, actor=ADMIN) for i in range(3)]
    outcomes = run_workers(workers.grant_login_revoke, *[(led.url, users, w, 60) for w in (0, 1)])
    assert all(o.startswith("ok") for o in outcomes), Counter(outcomes)
    assert_chain_intact(led)


def assert_chain_intact(led: Ledger) -> None:
    """Concurrent writers extend the integrity chain without a wrong or missing link."""
    with Audit(led.url) as audit:
        result = audit.verify()
    assert result.ok, result.summary()
    assert result.events == len(event_names(led))  # PostgreSQL ids may have gaps


def test_renames_never_leave_two_open_accounts_with_one_name(led: Ledger) -> None:
    accounts = [led.create_account(f"start-{i}", actor=ADMIN) for i in range(PROCESSES)]
    outcomes = run_workers(
        workers.claim_and_release,
        *[(led.url, accounts[w], w, 12) for w in range(PROCESSES)],
    )
    assert {o.split()[0] for o in outcomes} <= {"ok", "Conflict"}
    names = [led.repository.get(a).name for a in accounts]
    assert len(set(names)) == len(names)
    for account, name in zip(accounts, names, strict=True):
        assert led.account_id_for_name(name) == account
    claims = led.side.select_one(
        "SELECT COUNT(*) AS n FROM ledger_claims WHERE kind = ?", ("account-name",)
    )
    assert claims is not None and claims["n"] == PROCESSES
    assert_chain_intact(led)


@pytest.mark.parametrize("fails_in", ["chain links", "side rows"])
def test_a_save_that_fails_half_way_records_nothing(
    led: Ledger, acme: UUID, monkeypatch: pytest.MonkeyPatch, fails_in: str
) -> None:
    """A failure after the events' INSERT (in Python, while linking them or queueing their
    links; or in the database, in a side row) rolls back the events, their links and the side
    rows together; the ledger goes on as before."""
    ann = led.create_user("ann@example.org", account_id=acme, actor=ADMIN)
    before = stored_state(led)
    if fails_in == "chain links":

        def broken_links(*args: Any) -> Any:
            raise RuntimeError("linking failed")

        monkeypatch.setattr(chain, "links", broken_links)
        # on PostgreSQL a save of a few events sends its links as statements instead
        monkeypatch.setattr(LedgerPostgresRecorder, "_link_in_database", broken_links)
        with pytest.raises(RuntimeError, match="linking failed"):
            led.create_user("bob@example.org", account_id=acme, actor=ADMIN)
    else:
        original = side_tables.claim

        def unwritable_claim(kind: str, key: str, owner_id: UUID) -> Any:
            write = original(kind, key, owner_id)
            return side_tables.SideWrite(
                write.sql.replace("ledger_claims", "no_such_table"), write.params
            )

        monkeypatch.setattr(side_tables, "claim", unwritable_claim)
        fault = OperationalError if led.url.startswith("sqlite") else ProgrammingError
        with pytest.raises(fault, match="no_such_table"):  # the fault, not "conflicting"
            led.create_user("bob@example.org", account_id=acme, actor=ADMIN)
    assert stored_state(led) == before
    monkeypatch.undo()
    assert led.user_id_for_email("bob@example.org") is None
    led.record_login(ann)
    led.create_user("bob@example.org", account_id=acme, actor=ADMIN)
    assert_chain_intact(led)


def _raised(error: Exception, cause: Exception | None) -> Exception:
    try:
        raise error from cause
    except Exception as raised:
        return raised


def test_only_clashes_with_other_writers_are_retried() -> None:
    locked = sqlite3.OperationalError("database is locked")
    missing = sqlite3.OperationalError("no such table: ledger_claims")
    assert is_contention(_raised(OperationalError(str(locked)), locked))
    assert not is_contention(_raised(OperationalError(str(missing)), missing))
    assert is_contention(_raised(IntegrityError("UNIQUE constraint failed"), None))
    timeout = psycopg.errors.LockNotAvailable("canceling statement due to lock timeout")
    assert is_contention(_raised(OperationalError(str(timeout)), timeout))
