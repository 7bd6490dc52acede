"""Per-user encryption keys and password hashes: storing, looking up and verifying them."""

from __future__ import annotations

import base64
import hashlib
from uuid import UUID

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ledger.storage import side_tables as side
from ledger.storage.bulk import select_in
from ledger.storage.recorders import SideTableRecorder
from ledger.storage.side_tables import SideWrite

_HASHER = PasswordHasher()


def hash_password(password: str) -> str:
    """The argon2 hash of a password, the only thing stored of it."""
    return _HASHER.hash(password)


def credential_version(stored_hash: str | None) -> str | None:
    """A short fingerprint of a stored password hash (None: no password)."""
    return None if stored_hash is None else hashlib.sha256(stored_hash.encode()).hexdigest()[:16]


def put_key(key_id: str, user_id: UUID, key: bytes) -> SideWrite:
    return side.put_user_key(key_id, user_id, base64.b64encode(key).decode())


class Credentials:
    """The keys and password hashes in one ledger's side tables."""

    def __init__(self, side_tables: SideTableRecorder) -> None:
        self.side = side_tables

    def key(self, key_id: str) -> bytes | None:
        row = self.side.select_one(side.SELECT_KEY_BY_ID, (key_id,))
        return None if row is None else base64.b64decode(row["secret"])

    def keys(self, key_ids: list[str]) -> dict[str, bytes]:
        rows = select_in(
            self.side,
            "SELECT key_id, secret FROM ledger_user_keys WHERE key_id IN ({marks})",
            key_ids,
        )
        return {row["key_id"]: base64.b64decode(row["secret"]) for row in rows}

    def user_key(self, user_id: UUID) -> tuple[str, bytes] | None:
        row = self.side.select_one(side.SELECT_KEY_FOR_USER, (str(user_id),))
        return None if row is None else (row["key_id"], base64.b64decode(row["secret"]))

    def password_hash(self, user_id: UUID) -> str | None:
        row = self.side.select_one(side.SELECT_CREDENTIAL, (str(user_id),))
        return None if row is None else str(row["password_hash"])

    def version(self, user_id: UUID) -> str | None:
        """A short fingerprint of the stored password hash: it changes with every new
        password, None without a password."""
        return credential_version(self.password_hash(user_id))

    def verify(self, user_id: UUID, password: str) -> bool:
        stored = self.password_hash(user_id)
        if stored is None:
            return False
        try:
            return bool(_HASHER.verify(stored, password))
        except (VerificationError, InvalidHashError):
            return False
