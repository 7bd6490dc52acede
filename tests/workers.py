"""Functions run in separate processes by the concurrency tests (importable after spawn)."""

from __future__ import annotations

from functools import partial
from multiprocessing.synchronize import Barrier
from typing import Any
from uuid import UUID

from ledger import Ledger, LedgerError

ADMIN = "cli:worker"


def _outcome(call: Any) -> str:
    try:
        result = call()
    except LedgerError as error:
        return type(error).__name__
    except Exception as error:  # a raw driver error must never escape: report it
        return f"RAW {type(error).__module__}.{type(error).__name__}: {error}"
    return f"ok {result}"


def create_same_user(url: str, account: UUID, email: str, barrier: Barrier) -> list[str]:
    led = Ledger(url)
    try:
        barrier.wait()
        return [_outcome(lambda: led.create_user(email, account_id=account, actor=ADMIN))]
    finally:
        led.close()


def create_same_account(url: str, name: str, barrier: Barrier) -> list[str]:
    led = Ledger(url)
    try:
        barrier.wait()
        return [_outcome(lambda: led.create_account(name, actor=ADMIN))]
    finally:
        led.close()


def hammer_one_user(url: str, user: UUID, worker: int, rounds: int, barrier: Barrier) -> list[str]:
    """Grant distinct roles and record logins on one user: every one must land."""
    led = Ledger(url)
    try:
        barrier.wait()
        outcomes = []
        for i in range(rounds):
            role = f"role-{worker}-{i}"
            outcomes.append(_outcome(partial(led.grant_role, user, role, actor=ADMIN)))
            outcomes.append(_outcome(lambda: led.record_login(user)))
        return outcomes
    finally:
        led.close()


def claim_and_release(
    url: str, account: UUID, worker: int, rounds: int, barrier: Barrier
) -> list[str]:
    """Rename one account back and forth between names others want too."""
    led = Ledger(url)
    try:
        barrier.wait()
        return [
            _outcome(partial(led.update_account, account, actor=ADMIN, name=f"name-{i % 3}"))
            for i in range(worker, worker + rounds)
        ]
    finally:
        led.close()


def expire_grants(url: str, barrier: Barrier) -> list[str]:
    """Record the expiry of ended grants, at the same moment as the other workers."""
    led = Ledger(url)
    try:
        barrier.wait()
        return [_outcome(lambda: led.expire_grants(actor=ADMIN))]
    finally:
        led.close()


def denied_grants(
    url: str, user: UUID, as_user: str, command_id: str | None, rounds: int, barrier: Barrier
) -> list[str]:
    """Grant `admin` as a user who may not, `rounds` times: each a PermissionDenied."""
    led = Ledger(url)
    try:
        barrier.wait()
        return [
            _outcome(
                partial(
                    led.grant_role,
                    user,
                    "admin",
                    actor=ADMIN,
                    as_user=as_user,
                    command_id=command_id,
                )
            )
            for _ in range(rounds)
        ]
    finally:
        led.close()


def grant_login_revoke(
    url: str, users: list[UUID], worker: int, rounds: int, barrier: Barrier
) -> list[str]:
    """The bench's mix (a grant of admin, a login, its revocation) over a few shared users,
    round-robin: the same statements again and again on each connection, as a busy writer
    sends them (psycopg prepares a statement on its fifth use)."""
    led = Ledger(url)
    try:
        barrier.wait()
        outcomes = []
        for i in range(rounds):
            user = users[(i + worker) % len(users)]
            if i % 3 == 0:
                call = partial(led.grant_role, user, "admin", actor=ADMIN)
            elif i % 3 == 1:
                call = partial(led.record_login, user)
            else:
                call = partial(led.revoke_role, user, "admin", actor=ADMIN)
            outcomes.append(_outcome(call))
        return outcomes
    finally:
        led.close()
