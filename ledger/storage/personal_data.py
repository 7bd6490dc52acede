"""Personal data encrypted with one key per user (crypto-shredding).

Events name their personal fields in `personal_fields`. The mapper encrypts those fields with
the originator's key (AES-GCM, the user id and field name as associated data) and tags the
ciphertext with the key's id; an event about a user other than its originator names the field
holding that user's id in `personal_owner` (`personal_owner_of`), and without a user there
its fields are stored as they are. Deleting a user's keys erases the data: decoding then yields
`ERASED` in place of each field, and everything else in the event stays readable. The read
models keep the events' sealed values as they are and open them on read (`open_sealed`).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, Final, cast
from uuid import UUID

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import (
    Mapper,
    StoredEvent,
    Transcoder,
    find_id_convertor,
    pass_through_convertor,
)
from eventsourcing.utils import resolve_topic

from ledger.domain.base import ERASED

_PREFIX: Final = "enc1:"
_PREFIX_BYTES: Final = _PREFIX.encode()
_SEALED_KEY_ID: Final = re.compile(rb"enc1:([0-9a-f]{32}):")
KeyLookup = Callable[[str], bytes | None]
KeysLookup = Callable[[list[str]], dict[str, bytes]]
UserKeyLookup = Callable[[UUID], tuple[str, bytes] | None]
# Bounds of the keyring's caches (each cleared when full): a long read of the log meets every
# user's key, and an `AESGCM` holds about 2.5 KB outside Python's heap, so kept for each of a
# million-event log's 100,000 users they were 250 MB of a replay's 496 MB peak.
_KEYS_CACHED: Final = 8192
_CIPHERS_CACHED: Final = 1024


class Keyring:
    """Keys by key id and each user's current key, cached briefly.

    The cache lives for `ttl` seconds so that an erasure made by another process takes effect
    here within that time; erasures made through this process take effect at once (`forget`).
    Keys by id and their ciphers are bounded (`_KEYS_CACHED`, `_CIPHERS_CACHED`); each user's
    current key is not: it may be staged by a command and not yet in the database.
    """

    def __init__(self, ttl: float = 5.0) -> None:
        self.ttl = ttl
        self._by_id: dict[str, tuple[float, bytes | None]] = {}
        self._by_user: dict[UUID, tuple[str, bytes]] = {}
        self._ciphers: dict[str, AESGCM] = {}  # by key id: made once, not for every value
        self._lock = threading.Lock()
        self._lookup_key: KeyLookup = lambda key_id: None
        self._lookup_keys: KeysLookup = lambda key_ids: {}
        self._lookup_user_key: UserKeyLookup = lambda user_id: None

    def attach(
        self, lookup_key: KeyLookup, lookup_keys: KeysLookup, lookup_user_key: UserKeyLookup
    ) -> None:
        self._lookup_key = lookup_key
        self._lookup_keys = lookup_keys
        self._lookup_user_key = lookup_user_key

    @staticmethod
    def new_key() -> tuple[str, bytes]:
        return uuid.uuid4().hex, AESGCM.generate_key(bit_length=256)

    def stage(self, user_id: UUID, key_id: str, key: bytes) -> None:
        """Make a key being written in the current transaction usable for encryption now."""
        with self._lock:
            self._by_user[user_id] = (key_id, key)
            self._keep(key_id, (time.monotonic(), key))

    def load(self, key_ids: Iterable[str]) -> None:
        """Look up, in one go, the keys of these ids that `key` would otherwise look up one
        by one (absent keys, of erased users, are remembered as absent)."""
        now = time.monotonic()
        wanted = set(key_ids)
        with self._lock:
            missing = [
                key_id
                for key_id in wanted
                if (cached := self._by_id.get(key_id)) is None or now - cached[0] >= self.ttl
            ]
        if not missing:
            return
        found = self._lookup_keys(missing)
        with self._lock:
            if len(self._by_id) + len(missing) > _KEYS_CACHED:
                # emptied before, not after: these keys are about to be used, all of them
                kept = {key_id: self._by_id[key_id] for key_id in wanted if key_id in self._by_id}
                self._by_id.clear()
                self._by_id.update(kept)
            self._by_id.update((key_id, (now, found.get(key_id))) for key_id in missing)

    def clear(self) -> None:
        """Drop the keys cached for decryption (a long read of the log keeps none it is done
        with); each user's current key, which a command may have staged, stays."""
        with self._lock:
            self._by_id.clear()
            self._ciphers.clear()

    def forget(self, user_id: UUID) -> None:
        """An erasure through this process, committed: none of the user's keys is used again.
        Which ids cached for reading are the user's is not known here (a process that only
        read the user never held its current key), so every key cached by id goes, but the
        other users' current keys (a command may have staged one, not yet committed)."""
        with self._lock:
            entry = self._by_user.pop(user_id, None)
            current = {key_id for key_id, _ in self._by_user.values()}
            self._by_id = {k: cached for k, cached in self._by_id.items() if k in current}
            self._ciphers = {k: cipher for k, cipher in self._ciphers.items() if k in current}
            if entry is not None:
                self._keep(entry[0], (time.monotonic(), None))

    def key_for_user(self, user_id: UUID) -> tuple[str, bytes]:
        with self._lock:
            entry = self._by_user.get(user_id)
        if entry is None:
            entry = self._lookup_user_key(user_id)
            if entry is None:
                raise LookupError(f"user {user_id} has no encryption key (erased?)")
            with self._lock:
                self._by_user[user_id] = entry
        return entry

    def key(self, key_id: str) -> bytes | None:
        now = time.monotonic()
        with self._lock:
            cached = self._by_id.get(key_id)
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        key = self._lookup_key(key_id)
        with self._lock:
            self._keep(key_id, (now, key))
        return key

    def _keep(self, key_id: str, entry: tuple[float, bytes | None]) -> None:
        """Cache a key (None: deleted) by its id; the caller holds the lock."""
        if len(self._by_id) >= _KEYS_CACHED and key_id not in self._by_id:
            self._by_id.clear()
        self._by_id[key_id] = entry

    def cipher(self, key_id: str) -> AESGCM | None:
        """`AESGCM` of the key of this id (None if it is deleted), as fresh as `key`."""
        key = self.key(key_id)
        if key is None:
            return None
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            cipher = AESGCM(key)
            with self._lock:
                if len(self._ciphers) >= _CIPHERS_CACHED:
                    self._ciphers.clear()
                self._ciphers[key_id] = cipher
        return cipher


def personal_owner_of(event: Any) -> Any:
    """The user whose key seals the event's personal fields: its originator, or the user the
    field named by its class's `personal_owner` holds (None: nobody's, left unsealed)."""
    owner_field = getattr(type(event), "personal_owner", None)
    if owner_field is None:
        return event.originator_id
    return getattr(event, owner_field, None)


def _unsealed(value: Any) -> bool:
    """Whether a personal field's value is stored as it is: None, or already ERASED."""
    return value is None or value == ERASED


def _aad(originator_id: Any, field: str) -> bytes:
    return f"{originator_id}:{field}".encode()


class PersonalDataMapper(Mapper[UUID]):
    def __init__(self, transcoder: Transcoder, keyring: Keyring) -> None:
        super().__init__(transcoder=transcoder)
        self.keyring = keyring
        # per topic, the event class and its class_version (`getattr` on a class without one
        # formats an AttributeError each time)
        self._classes: dict[str, tuple[Any, int]] = {}
        self._uuid_as_is: set[type[Any]] = set()  # classes whose UUID ids pass as they are

    def to_stored_event(self, domain_event: DomainEventProtocol[UUID]) -> StoredEvent:
        fields = getattr(type(domain_event), "personal_fields", ())
        owner = personal_owner_of(domain_event)
        # nothing to seal: no field set, or set to ERASED (an entry about an erased user)
        if not fields or owner is None or all(_unsealed(getattr(domain_event, f)) for f in fields):
            return super().to_stored_event(domain_event)
        key_id, key = self.keyring.key_for_user(owner)
        sealed = object.__new__(type(domain_event))
        state = dict(vars(domain_event))
        for field in fields:
            if not _unsealed(state[field]):
                nonce = os.urandom(12)
                ciphertext = AESGCM(key).encrypt(
                    nonce, str(state[field]).encode(), _aad(owner, field)
                )
                encoded = base64.b64encode(nonce + ciphertext).decode()
                state[field] = f"{_PREFIX}{key_id}:{encoded}"
        object.__setattr__(sealed, "__dict__", state)
        return super().to_stored_event(sealed)

    def to_domain_events(
        self, stored_events: Sequence[StoredEvent], *, opened: bool = True
    ) -> list[DomainEventProtocol[UUID]]:
        """Decode many events, the keys they need looked up together first: a page of user
        creations otherwise costs one key query each (on PostgreSQL, 10 of 22 s of projecting
        60k events under cProfile). `opened=False` leaves the personal fields sealed."""
        if not opened:
            if self.cipher or self.compressor:
                return [Mapper.to_domain_event(self, stored) for stored in stored_events]
            return [self._decoded(stored) for stored in stored_events]
        self.keyring.load(
            key_id.decode()
            for stored in stored_events
            if _PREFIX_BYTES in stored.state  # most hold nothing sealed: no regex scan
            for key_id in _SEALED_KEY_ID.findall(stored.state)
        )
        return [self.to_domain_event(stored) for stored in stored_events]

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[UUID]:
        event = (
            super().to_domain_event(stored_event)
            if self.cipher or self.compressor
            else self._decoded(stored_event)
        )
        fields = _PERSONAL_FIELDS.get(type(event))
        if fields is None:
            fields = _PERSONAL_FIELDS[type(event)] = getattr(type(event), "personal_fields", ())
        if not fields:
            return event
        owner = personal_owner_of(event)
        if owner is None:
            return event
        state = event.__dict__
        for field in fields:
            value = state.get(field)
            if isinstance(value, str) and value.startswith(_PREFIX):
                state[field] = open_sealed(self.keyring, value, owner, field)
        return event

    def _decoded(self, stored_event: StoredEvent) -> Any:
        """`Mapper.to_domain_event` without a cipher or compressor, less its lookups per event
        (anything it would refuse goes to it, to be refused in its words)."""
        found = self._classes.get(stored_event.topic)
        if found is None:
            cls = resolve_topic(stored_event.topic)
            found = self._classes[stored_event.topic] = (cls, getattr(cls, "class_version", 1))
        cls, class_version = found
        try:
            state = self.transcoder.decode(stored_event.state)
        except Exception:
            state = None
        if type(state) is not dict:
            return super().to_domain_event(stored_event)
        originator_id = stored_event.originator_id
        if type(originator_id) is UUID and cls in self._uuid_as_is:
            state["originator_id"] = originator_id
        else:
            convert = find_id_convertor(cls, cast(Hashable, type(originator_id)))
            if type(originator_id) is UUID and convert is pass_through_convertor:
                self._uuid_as_is.add(cls)
            state["originator_id"] = convert(originator_id)
        state["originator_version"] = stored_event.originator_version
        from_version = state.pop("class_version", 1)
        while from_version < class_version:
            getattr(cls, f"upcast_v{from_version}_v{from_version + 1}")(state)
            from_version += 1
        event = object.__new__(cls)
        object.__setattr__(event, "__dict__", state)
        return event


# each event class's personal fields, looked up once
_PERSONAL_FIELDS: dict[type, tuple[str, ...]] = {}


def sealed_key_id(value: Any) -> str | None:
    """The id of the key that sealed `value`, or None if it is not sealed."""
    if isinstance(value, str) and value.startswith(_PREFIX):
        return value[len(_PREFIX) : len(_PREFIX) + 32]
    return None


def open_sealed(keyring: Keyring, value: str, owner_id: Any, field: str) -> str:
    """A personal field's value: opened if sealed (`ERASED` once its key is deleted), else
    as it is (a read model projected in the open, or `ERASED` itself)."""
    if not value.startswith(_PREFIX):
        return value
    key_id, encoded = value[len(_PREFIX) :].split(":", 1)
    cipher = keyring.cipher(key_id)
    if cipher is None:
        return ERASED
    raw = binascii.a2b_base64(encoded)  # what base64.b64decode does, less its checks
    return cipher.decrypt(raw[:12], raw[12:], _aad(owner_id, field)).decode()
