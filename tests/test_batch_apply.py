"""`ledger apply` runs a batch of lines as one transaction, loading its users and accounts
ahead of the commands in a few queries and writing its side rows in bulk. That must give what
one-by-one commands give: aggregates fresh even when this process's cache is stale, nothing
loaded that does not exist, and side rows written in the order the commands made them."""

from __future__ import annotations

import json
import uuid
from uuid import UUID

from ledger import Ledger
from ledger.domain import ERASED, User
from ledger.importer import Importer
from tests.conftest import ADMIN
from tests.helpers import stored_state


def _apply(led: Ledger, commands: list[dict[str, object]]) -> list[tuple[str, str | None]]:
    summary = Importer(led, actor=ADMIN).apply(
        [(n, json.dumps(c)) for n, c in enumerate(commands, 1)]
    )
    return [(r.status, r.error) for r in summary.results]


def test_changes_made_by_another_process_are_seen_through_a_stale_cache(
    led: Ledger, url: str, acme: UUID
) -> None:
    ann = led.create_user("ann@example.org", account_id=acme, actor=ADMIN)
    bob = led.create_user("bob@example.org", account_id=acme, actor=ADMIN)
    led.repository.get(ann)  # both now in this process's cache, without admin
    led.repository.get(bob)
    other = Ledger(url)
    try:
        other.grant_role(ann, "admin", actor=ADMIN)
        other.grant_role(bob, "admin", actor=ADMIN)
    finally:
        other.close()

    results = _apply(
        led,
        [
            {"command": "revoke_role", "user": "ann@example.org", "role": "admin"},
            {"command": "revoke_role", "user": str(bob), "role": "admin"},
        ],
    )

    assert results == [("applied", None), ("applied", None)]
    assert led.repository.get(ann).roles == set()
    assert led.repository.get(bob).roles == set()


def test_cached_and_uncached_users_end_in_the_same_state(url: str, acme: UUID) -> None:
    """The same file applied by a process that has every user cached and by one that has none
    records the same events."""
    writer = Ledger(url)
    users = [
        writer.create_user(f"u{n}@example.org", account_id=acme, actor=ADMIN) for n in range(6)
    ]
    commands: list[dict[str, object]] = []
    for n, user in enumerate(users):
        commands.append({"command": "grant_role", "user": str(user), "role": "admin"})
        if n % 2:
            commands.append({"command": "revoke_role", "user": str(user), "role": "admin"})
        commands.append({"command": "record_login", "user": f"u{n}@example.org"})
    for user in users:
        writer.repository.get(user)  # cached here, then made stale by the other process
    cold = Ledger(url)
    try:
        assert all(status == "applied" for status, _ in _apply(cold, commands))
        again = [{**c, "command": "revoke_role"} for c in commands if c["command"] == "grant_role"]
        warm_results = _apply(writer, again)
        assert warm_results == [("applied" if n % 2 == 0 else "unchanged", None) for n in range(6)]
        for user in users:
            assert cold.repository.get(user).roles == set()
            assert cold.repository.get(user).last_login_at is not None
    finally:
        cold.close()
        writer.close()


def test_an_unknown_user_id_is_rejected_and_records_nothing(led: Ledger, acme: UUID) -> None:
    ann = led.create_user("ann@example.org", account_id=acme, actor=ADMIN)
    nobody = uuid.uuid4()
    before = stored_state(led)

    results = _apply(led, [{"command": "grant_role", "user": str(nobody), "role": "admin"}])

    assert results == [("rejected", f"user {nobody} not found")]
    assert stored_state(led) == before
    assert _apply(led, [{"command": "grant_role", "user": str(ann), "role": "admin"}]) == [
        ("applied", None)
    ]


def test_an_account_id_given_as_a_user_is_rejected(led: Ledger, acme: UUID) -> None:
    before = stored_state(led)
    results = _apply(led, [{"command": "grant_role", "user": str(acme), "role": "admin"}])
    assert results == [("rejected", f"user {acme} not found")]
    assert stored_state(led) == before


def test_an_erased_user_loads_with_its_personal_data_erased(
    led: Ledger, url: str, acme: UUID
) -> None:
    ann = led.create_user("ann@example.org", account_id=acme, actor=ADMIN)
    led.erase_user(ann, actor=ADMIN, reason="GDPR request 7")
    fresh = Ledger(url)  # nothing cached, no key remembered
    try:
        results = _apply(fresh, [{"command": "deactivate_user", "user": str(ann)}])
        user = fresh.repository.get(ann)
        assert isinstance(user, User)
        assert user.email == ERASED
        assert results == [("unchanged", None)] and not user.active
    finally:
        fresh.close()


def test_an_email_freed_in_a_batch_is_taken_by_a_later_line(led: Ledger, acme: UUID) -> None:
    ann = led.create_user("ann@example.org", account_id=acme, actor=ADMIN)
    bob = led.create_user("bob@example.org", account_id=acme, actor=ADMIN)

    results = _apply(
        led,
        [
            {"command": "update_user", "user": str(ann), "email": "ann.new@example.org"},
            {"command": "update_user", "user": str(bob), "email": "ann@example.org"},
            {"command": "create_user", "email": "bob@example.org", "account": str(acme)},
            {"command": "update_user", "user": str(ann), "email": "ann.newer@example.org"},
        ],
    )

    assert results == [("applied", None)] * 4
    assert led.user_id_for_email("ann.new@example.org") is None  # claimed, then released
    assert led.user_id_for_email("ann.newer@example.org") == ann
    assert led.user_id_for_email("ann@example.org") == bob
    carol = led.user_id_for_email("bob@example.org")
    assert carol not in (None, ann, bob)
