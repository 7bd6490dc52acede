"""Secrets never enter a command's fingerprint: its key lies in the same database, so a copy of
the database could test password guesses against it far faster than against argon2. A command
id repeated with only its password changed returns the first result."""

from __future__ import annotations

import hashlib
import hmac
import json
from uuid import UUID

from ledger import Ledger
from ledger.storage import side_tables as side
from tests.conftest import ADMIN
from tests.test_erasure_on_disk import on_disk


def fingerprint(led: Ledger, command_id: str) -> str:
    row = led.side.select_one(side.SELECT_COMMAND, (command_id,))
    assert row is not None
    return str(row["fingerprint"])


def keyed_hash_with(led: Ledger, command: str, args: dict[str, object]) -> bytes:
    """A keyed hash of a command with its password, as fingerprints were once made."""
    canonical = json.dumps({"command": command, "args": args}, sort_keys=True, default=str)
    secret = led.named_secret("hmac")  # the claims and fingerprints key
    return hmac.new(secret, canonical.encode(), hashlib.sha256).hexdigest().encode()


def test_a_password_changes_no_fingerprint(led: Ledger, acme: UUID) -> None:
    ann = led.create_user(
        "ann@acme.org", account_id=acme, actor=ADMIN, password="tr0ub4dor&3", command_id="c-1"
    )
    created = fingerprint(led, "c-1")
    again = led.create_user(
        "ann@acme.org", account_id=acme, actor=ADMIN, password="other secret", command_id="c-1"
    )
    assert again == ann and fingerprint(led, "c-1") == created
    assert led.verify_password(ann, "tr0ub4dor&3")  # the first result: its password stands
    assert not led.verify_password(ann, "other secret")

    assert led.set_password(ann, "correct horse", actor=ADMIN, command_id="p-1") is True
    changed = fingerprint(led, "p-1")
    assert led.set_password(ann, "battery staple", actor=ADMIN, command_id="p-1") is True
    assert fingerprint(led, "p-1") == changed
    assert led.verify_password(ann, "correct horse")
    assert not led.verify_password(ann, "battery staple")


def test_nothing_stored_derives_from_a_password_but_its_argon2_hash(
    url: str, led: Ledger, acme: UUID
) -> None:
    password = "correct horse battery staple"
    ann = led.create_user("ann@acme.org", account_id=acme, actor=ADMIN, command_id="c-1")
    led.set_password(ann, password, actor=ADMIN, command_id="p-1")
    needles = {
        "password": password.encode(),
        "sha256": hashlib.sha256(password.encode()).hexdigest().encode(),
        "fingerprint with it": keyed_hash_with(
            led, "set_password", {"user": ann, "password": password}
        ),
    }
    assert on_disk(url, needles) == set()
    row = led.side.select_one(side.SELECT_CREDENTIAL, (str(ann),))
    assert row is not None and row["password_hash"].startswith("$argon2")
