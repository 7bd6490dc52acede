"""Rows written in the same transaction as the events, but kept outside the event log.

- `ledger_claims`: unique values (email, username, open account name) and who holds them;
  the primary key makes a second claimant's whole transaction fail.
- `ledger_commands`: applied command ids, with a fingerprint of the arguments and the result.
- `ledger_user_keys`: one encryption key per user; deleting it erases the user's personal data.
- `ledger_credentials`: argon2 password hashes.
- `ledger_secrets`: the server-side secret behind the keyed hashes.
- `ledger_grant_ends`: each held grant with an end fixed in advance, so that `expire_grants`
  finds the ended ones without reading the log.
- `ledger_mirrored_ids`: the ids a mirrored system (FlexMeasures) gives what the ledger holds.
- `ledger_read_guards`: never a row; see `read_guard`.
- `ledger_mirror_cursors`: how far each mirrored system was followed (its last audit entry,
  digests of its tables), written with the events that got it there.

Statements use `?` placeholders; recorders for other drivers translate them.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import groupby
from typing import Any, Final
from uuid import UUID

DDL: Final = [
    "CREATE TABLE IF NOT EXISTS ledger_claims ("
    " kind TEXT NOT NULL, key TEXT NOT NULL, owner_id TEXT NOT NULL,"
    " PRIMARY KEY (kind, key))",
    "CREATE INDEX IF NOT EXISTS ledger_claims_owner ON ledger_claims (owner_id)",
    "CREATE TABLE IF NOT EXISTS ledger_commands ("
    " command_id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, result TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS ledger_user_keys ("
    " key_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, secret TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS ledger_user_keys_user ON ledger_user_keys (user_id)",
    "CREATE TABLE IF NOT EXISTS ledger_credentials ("
    " user_id TEXT PRIMARY KEY, password_hash TEXT NOT NULL, changed_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS ledger_secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS ledger_grant_ends ("
    " holder_id TEXT NOT NULL, role TEXT NOT NULL, kind TEXT NOT NULL, ends_at TEXT NOT NULL,"
    " PRIMARY KEY (holder_id, role))",
    "CREATE INDEX IF NOT EXISTS ledger_grant_ends_at ON ledger_grant_ends (ends_at)",
    "CREATE TABLE IF NOT EXISTS ledger_mirrored_ids ("
    " source TEXT NOT NULL, kind TEXT NOT NULL, external_id BIGINT NOT NULL,"
    " ledger_id TEXT NOT NULL, PRIMARY KEY (source, kind, external_id))",
    "CREATE INDEX IF NOT EXISTS ledger_mirrored_ids_ledger ON ledger_mirrored_ids (ledger_id)",
    # never holds a row: a save guarded against a concurrent change (see `read_guard`) tries
    # to insert one, which fails, and the whole save with it, if the guarded aggregate moved
    "CREATE TABLE IF NOT EXISTS ledger_read_guards (stale INTEGER NOT NULL CHECK (stale = 0))",
    "CREATE TABLE IF NOT EXISTS ledger_mirror_cursors ("
    " source TEXT PRIMARY KEY, last_entry_id BIGINT NOT NULL, fingerprints TEXT NOT NULL,"
    " synced_at TEXT NOT NULL, polled_at TEXT NOT NULL)",
]
# PostgreSQL's ANALYZE would copy sample values of these columns (keys, keyed hashes of emails,
# password hashes) into pg_statistic, where no erasure reaches them; no query filters on them.
DDL_POSTGRES: Final = [
    f"ALTER TABLE {table} ALTER COLUMN {column} SET STATISTICS 0"
    for table, column in (
        ("ledger_claims", "key"),
        ("ledger_commands", "fingerprint"),
        ("ledger_user_keys", "secret"),
        ("ledger_credentials", "password_hash"),
    )
]
# The tables whose deleted rows held a user's keys or personal data: wiped after an erasure.
ERASED_FROM: Final = ("ledger_user_keys", "ledger_claims", "ledger_credentials")

EMAIL: Final = "email"
USERNAME: Final = "username"
ACCOUNT_NAME: Final = "account-name"
HMAC_SECRET: Final = "hmac"  # the name in ledger_secrets of the claims' and fingerprints' key


def claim_key(secret: bytes, kind: str, value: str) -> str:
    """The key a unique value is claimed under. Emails (casefolded) and usernames are personal
    data: they are claimed as a keyed hash, which without the secret gives nothing away."""
    if kind == EMAIL:
        value = value.casefold()
    elif kind != USERNAME:
        return value
    return hmac.new(secret, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class SideWrite:
    sql: str
    params: tuple[Any, ...]


def runs(writes: Iterable[SideWrite]) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
    """Consecutive writes of the same statement, as one statement and its rows (for
    `executemany`); the order of the writes is kept."""
    for sql, group in groupby(writes, key=lambda write: write.sql):
        yield sql, [write.params for write in group]


def claim(kind: str, key: str, owner_id: UUID) -> SideWrite:
    return SideWrite(
        "INSERT INTO ledger_claims (kind, key, owner_id) VALUES (?, ?, ?)",
        (kind, key, str(owner_id)),
    )


def release(kind: str, key: str) -> SideWrite:
    return SideWrite("DELETE FROM ledger_claims WHERE kind = ? AND key = ?", (kind, key))


def release_all(owner_id: UUID) -> SideWrite:
    return SideWrite("DELETE FROM ledger_claims WHERE owner_id = ?", (str(owner_id),))


REMEMBER_COMMAND: Final = (
    "INSERT INTO ledger_commands (command_id, fingerprint, result) VALUES (?, ?, ?)"
)


def remember_command(command_id: str, fingerprint: str, result: str) -> SideWrite:
    return SideWrite(REMEMBER_COMMAND, (command_id, fingerprint, result))


def put_user_key(key_id: str, user_id: UUID, secret: str) -> SideWrite:
    return SideWrite(
        "INSERT INTO ledger_user_keys (key_id, user_id, secret) VALUES (?, ?, ?)",
        (key_id, str(user_id), secret),
    )


def delete_user_keys(user_id: UUID) -> SideWrite:
    return SideWrite("DELETE FROM ledger_user_keys WHERE user_id = ?", (str(user_id),))


def put_credential(user_id: UUID, password_hash: str, changed_at: str) -> SideWrite:
    return SideWrite(
        "INSERT INTO ledger_credentials (user_id, password_hash, changed_at) VALUES (?, ?, ?)"
        " ON CONFLICT (user_id) DO UPDATE SET password_hash = excluded.password_hash,"
        " changed_at = excluded.changed_at",
        (str(user_id), password_hash, changed_at),
    )


def delete_credential(user_id: UUID) -> SideWrite:
    return SideWrite("DELETE FROM ledger_credentials WHERE user_id = ?", (str(user_id),))


def put_secret_if_absent(name: str, value: str) -> SideWrite:
    return SideWrite(
        "INSERT INTO ledger_secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
        (name, value),
    )


def instant_text(moment: datetime) -> str:
    """An instant as text that sorts as the instants do (UTC, fixed width, year 1 to 9999)."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")


def put_grant_end(holder_id: UUID, kind: str, role: str, ends_at: datetime) -> SideWrite:
    return SideWrite(
        "INSERT INTO ledger_grant_ends (holder_id, role, kind, ends_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (holder_id, role) DO UPDATE SET ends_at = excluded.ends_at",
        (str(holder_id), role, kind, instant_text(ends_at)),
    )


def delete_grant_end(holder_id: UUID, role: str) -> SideWrite:
    return SideWrite(
        "DELETE FROM ledger_grant_ends WHERE holder_id = ? AND role = ?", (str(holder_id), role)
    )


SELECT_GRANTS_ENDED: Final = (
    "SELECT holder_id, kind, role FROM ledger_grant_ends WHERE ends_at <= ?"
    " ORDER BY holder_id, role"
)


def map_id(source: str, kind: str, external_id: int, ledger_id: UUID) -> SideWrite:
    return SideWrite(
        "INSERT INTO ledger_mirrored_ids (source, kind, external_id, ledger_id)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (source, kind, external_id) DO NOTHING",
        (source, kind, external_id, str(ledger_id)),
    )


def put_cursor(
    source: str, last_entry_id: int, fingerprints: str, synced_at: str, polled_at: str
) -> SideWrite:
    return SideWrite(
        "INSERT INTO ledger_mirror_cursors"
        " (source, last_entry_id, fingerprints, synced_at, polled_at) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (source) DO UPDATE SET last_entry_id = excluded.last_entry_id,"
        " fingerprints = excluded.fingerprints, synced_at = excluded.synced_at,"
        " polled_at = excluded.polled_at",
        (source, last_entry_id, fingerprints, synced_at, polled_at),
    )


def put_polled_at(source: str, polled_at: str) -> SideWrite:
    return SideWrite(
        "UPDATE ledger_mirror_cursors SET polled_at = ? WHERE source = ?", (polled_at, source)
    )


SELECT_MIRRORED_IDS: Final = (
    "SELECT kind, external_id, ledger_id FROM ledger_mirrored_ids WHERE source = ?"
)
SELECT_LEDGER_ID: Final = (
    "SELECT ledger_id FROM ledger_mirrored_ids WHERE kind = ? AND external_id = ?"
    " ORDER BY source LIMIT 1"
)
SELECT_EXTERNAL_ID: Final = (
    "SELECT external_id FROM ledger_mirrored_ids WHERE kind = ? AND ledger_id = ?"
    " ORDER BY source LIMIT 1"
)
SELECT_CURSOR: Final = (
    "SELECT last_entry_id, fingerprints, synced_at, polled_at FROM ledger_mirror_cursors"
    " WHERE source = ?"
)
SELECT_CLAIM_OWNER: Final = "SELECT owner_id FROM ledger_claims WHERE kind = ? AND key = ?"
SELECT_USERS_NOT_ERASED: Final = (
    f"SELECT DISTINCT owner_id FROM ledger_claims WHERE kind = '{EMAIL}' ORDER BY owner_id"
)
SELECT_COMMAND: Final = "SELECT fingerprint, result FROM ledger_commands WHERE command_id = ?"
SELECT_KEY_BY_ID: Final = "SELECT user_id, secret FROM ledger_user_keys WHERE key_id = ?"
SELECT_KEY_FOR_USER: Final = "SELECT key_id, secret FROM ledger_user_keys WHERE user_id = ?"
SELECT_CREDENTIAL: Final = "SELECT password_hash FROM ledger_credentials WHERE user_id = ?"
SELECT_SECRET: Final = "SELECT value FROM ledger_secrets WHERE name = ?"


def read_guard(events_table: str) -> str:
    """A statement that fails (a CHECK violation, which rolls the save back as a clash does)
    when the aggregate `?` has an event after version `?`: run with the write lock held, it
    proves that what a decision read was still the latest state when its events were saved."""
    return (
        f"INSERT INTO ledger_read_guards (stale) SELECT 1 FROM {events_table}"
        " WHERE originator_id = ? AND originator_version > ? LIMIT 1"
    )
