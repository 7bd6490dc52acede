"""Personal data in the read models: kept as the events seal it (with the user's key, which
erasure deletes), opened on read; and users found by email through the ledger's keyed claims.

A read model projected from its own database's ledger never holds personal data in the open,
so erasing a user needs no rewrite of it. A point-in-time replay into a file of its own holds
the data in the open (its keys stay behind in the ledger), and finds users by a casefolded
email column instead."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Iterable
from typing import Any, Final
from uuid import UUID

from sqlalchemy import Engine, bindparam, column, inspect, select, table, text

from ledger.domain import ExternalSource, User
from ledger.errors import ValidationError
from ledger.storage import side_tables as side
from ledger.storage.personal_data import Keyring, open_sealed, sealed_key_id
from ledger.validation import Email, valid
from projections.prepared import PreparedReader

PERSONAL_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    event.__name__: fields
    for aggregate in (User, ExternalSource)
    for event in vars(aggregate).values()
    if isinstance(event, type) and (fields := getattr(event, "personal_fields", ()))
}
"""The personal fields of each event that has any, by event name (as in the audit log)."""
PERSONAL_OWNERS: Final[dict[str, str]] = {
    event.__name__: owner
    for event in vars(ExternalSource).values()
    if isinstance(event, type) and (owner := getattr(event, "personal_owner", None))
}
"""Of events whose personal fields are sealed with another user's key than their aggregate's
(an entry of a mirrored system's log about a user), the field naming that user."""

_KEYS: Final = text("SELECT key_id, secret FROM ledger_user_keys WHERE key_id IN :ids").bindparams(
    bindparam("ids", expanding=True)
)
_user_keys = table("ledger_user_keys", column("key_id"), column("secret"))
_ONE_KEY: Final = select(_user_keys.c.key_id, _user_keys.c.secret).where(
    _user_keys.c.key_id == bindparam("id")
)
_SECRET: Final = text(side.SELECT_SECRET.replace("?", ":name"))
_EMAIL_OWNER: Final = text(
    "SELECT owner_id FROM ledger_claims WHERE kind = :kind AND key IN :keys"
).bindparams(bindparam("keys", expanding=True))


class PersonalData:
    def __init__(self, engine: Engine, reader: PreparedReader | None = None) -> None:
        self.engine = engine
        self.reader = reader  # one key (a user read on its own) is looked up through it
        self.keyring = Keyring()
        self.keyring.attach(self._key, self._keys, lambda user_id: None)
        self._secret: bytes | None = None
        self._holds_ledger = False

    def reveal(self, value: str, owner_id: UUID, field: str) -> str:
        """A personal field as stored in a read model, opened (`ERASED` if its key is gone)."""
        return open_sealed(self.keyring, value, owner_id, field)

    def prepare(self, values: Iterable[Any]) -> None:
        """Look up together the keys that these stored values need."""
        self.keyring.load(key_id for value in values if (key_id := sealed_key_id(value)))

    def reveal_fields(self, event: str, owner_id: UUID, fields: dict[str, Any]) -> dict[str, Any]:
        """An audit-log row's event fields, its personal ones opened."""
        personal = PERSONAL_FIELDS.get(event, ())
        if not personal:
            return fields
        if event in PERSONAL_OWNERS:
            owner = fields.get(PERSONAL_OWNERS[event])
            if owner is None:
                return fields  # about nobody: never sealed
            owner_id = UUID(str(owner))
        opened = dict(fields)
        for name in personal:
            if isinstance(opened.get(name), str):
                opened[name] = self.reveal(opened[name], owner_id, name)
        return opened

    def holds_ledger(self) -> bool:
        """Whether the ledger's own tables are in this database (else it is a replay file)."""
        if not self._holds_ledger:  # asked again until found: the ledger may come later
            self._holds_ledger = inspect(self.engine).has_table("ledger_claims")
        return self._holds_ledger

    def user_id_for_email(self, email: str) -> UUID | None:
        """The user holding this email now, from the ledger's claims (keyed hashes)."""
        text_given = str(email).strip()
        if not text_given:
            return None
        spellings = {text_given} if text_given.isascii() else set()
        with contextlib.suppress(ValidationError):  # an invalid email is nobody's
            spellings.add(valid(Email, text_given, "email"))
        if not spellings:
            return None
        secret = self._hmac_secret()
        if secret is None:
            return None
        keys = sorted({side.claim_key(secret, side.EMAIL, spelling) for spelling in spellings})
        with self.engine.connect() as conn:
            owner = conn.execute(_EMAIL_OWNER, {"kind": side.EMAIL, "keys": keys}).scalar()
        return None if owner is None else UUID(owner)

    def _hmac_secret(self) -> bytes | None:
        if self._secret is None:
            with self.engine.connect() as conn:
                value = conn.execute(_SECRET, {"name": side.HMAC_SECRET}).scalar()
            self._secret = None if value is None else bytes.fromhex(value)
        return self._secret

    def _keys(self, key_ids: list[str]) -> dict[str, bytes]:
        if self.reader is not None and len(key_ids) == 1:
            # the calling thread's own connection, not one checked out of the engine's pool
            one = self.reader.all(_ONE_KEY, {"id": key_ids[0]})
            return {key_id: base64.b64decode(secret) for key_id, secret in one}
        found: dict[str, bytes] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(key_ids), 500):
                rows = conn.execute(_KEYS, {"ids": key_ids[start : start + 500]})
                found.update((key_id, base64.b64decode(secret)) for key_id, secret in rows)
        return found

    def _key(self, key_id: str) -> bytes | None:
        return self._keys([key_id]).get(key_id)
