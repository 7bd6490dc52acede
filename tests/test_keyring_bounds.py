"""The keyring's caches are bounded: a long read of the log opens every user's personal data,
and kept for every key they grew with the users (a replay of a million-event log held 100,000
ciphers, 250 MB). Bounded, the data still opens the same."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger import Ledger
from ledger.domain.base import ERASED
from ledger.storage import personal_data
from ledger.storage.personal_data import Keyring
from projections import ReadModel
from projections.comparison import table_rows
from tests.conftest import ADMIN

USERS = 12
KEYS_BOUND, CIPHERS_BOUND = 5, 3


def _replay(led: Ledger, path: Path, page_size: int) -> tuple[ReadModel, int]:
    model = ReadModel(f"sqlite:///{path}", source=led, page_size=page_size, sealed=False)
    return model, model.catch_up()


def test_a_catch_up_over_more_keys_than_the_bounds_keeps_no_more(
    url: str, led: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = led.create_account("Acme", actor=ADMIN)
    for n in range(USERS):
        user = led.create_user(f"u{n}@acme.org", account_id=account, actor=ADMIN)
        led.record_login(user, ip=f"192.0.2.{n}")
    unbounded, count = _replay(led, tmp_path / "unbounded.db", page_size=4)
    expected = table_rows(unbounded.engine)
    unbounded.close()

    monkeypatch.setattr(personal_data, "_KEYS_CACHED", KEYS_BOUND)
    monkeypatch.setattr(personal_data, "_CIPHERS_CACHED", CIPHERS_BOUND)
    reader = Ledger(url)  # a fresh keyring, as a replay's
    try:
        bounded, again = _replay(reader, tmp_path / "bounded.db", page_size=4)
        keyring = reader._keyring
        assert 0 < len(keyring._by_id) <= KEYS_BOUND
        assert 0 < len(keyring._ciphers) <= CIPHERS_BOUND
        assert again == count
        assert table_rows(bounded.engine) == expected
        emails = {user.email for user in bounded.list_users(include_inactive=True)}
        assert emails == {f"u{n}@acme.org" for n in range(USERS)}
        bounded.close()
    finally:
        reader.close()


def test_keys_looked_up_together_beyond_the_bound_are_all_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A page needing more keys than the bound keeps them all until the next look-up: none is
    looked up again one by one."""
    monkeypatch.setattr(personal_data, "_KEYS_CACHED", KEYS_BOUND)
    stored = {f"{n:032x}": bytes([n]) * 32 for n in range(3 * KEYS_BOUND)}
    single: list[str] = []

    def one(key_id: str) -> bytes | None:
        single.append(key_id)
        return stored.get(key_id)

    keyring = Keyring()
    keyring.attach(one, lambda ids: {i: stored[i] for i in ids if i in stored}, lambda u: None)
    keyring.load(list(stored)[:2])
    keyring.load(stored)
    assert [keyring.key(key_id) for key_id in stored] == list(stored.values())
    assert single == []
    keyring.key("f" * 32)  # one more, alone: the cache is full, so it starts again
    assert single == ["f" * 32] and len(keyring._by_id) == 1


def _emails_in_the_log(led: Ledger) -> list[str]:
    notifications = led.recorder.select_notifications(start=1, limit=100)
    events = led.to_domain_events(notifications)
    return [event.email for event in events if type(event).__name__ == "UserCreated"]


def test_an_erasure_through_a_ledger_that_only_read_the_user_takes_effect_at_once(
    url: str, led: Ledger
) -> None:
    """A ledger that decrypted a user's data but never wrote for them holds the user's key only
    by its id: erasing the user through it must drop that key too, not after the cache's ttl."""
    account = led.create_account("Acme", actor=ADMIN)
    ann = led.create_user("ann@acme.org", account_id=account, actor=ADMIN)
    bob = led.create_user("bob@acme.org", account_id=account, actor=ADMIN)
    reader = Ledger(url)
    try:
        assert _emails_in_the_log(reader) == ["ann@acme.org", "bob@acme.org"]
        reader.erase_user(ann, actor=ADMIN, reason="asked to be forgotten")
        assert _emails_in_the_log(reader) == [ERASED, "bob@acme.org"]
        reader.record_login(bob, ip="192.0.2.7")  # the others' keys still work
        assert _emails_in_the_log(reader) == [ERASED, "bob@acme.org"]
    finally:
        reader.close()
