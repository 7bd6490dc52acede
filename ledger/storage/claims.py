"""Uniqueness claims (email, username, open account name): their keys, who holds them, and
claiming or releasing one inside a unit of work."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache, partial
from typing import Any, Final
from uuid import UUID

from ledger import references
from ledger.errors import NotFound, ValidationError
from ledger.storage import side_tables as side
from ledger.storage.bulk import select_in
from ledger.storage.recorders import SideTableRecorder
from ledger.unit_of_work import UnitOfWork
from ledger.validation import AccountName, Email, Username, shown, valid

EMAIL: Final = side.EMAIL
USERNAME: Final = side.USERNAME
ACCOUNT_NAME: Final = side.ACCOUNT_NAME
# an import computes a line's email key two or three times; the runner empties the cache
# after each command run alone and each batch's commit
_KEYS_CACHED: Final = 16_384
KINDS: Final = {EMAIL: Email, USERNAME: Username, ACCOUNT_NAME: AccountName}


class Claims:
    """The claims of one ledger: `secret` keys the hashes that emails and usernames are
    claimed under. Look-ups given a unit of work see what it claimed or released first."""

    def __init__(self, side_tables: SideTableRecorder, secret: bytes) -> None:
        self.side = side_tables
        self.secret = secret
        self._key = lru_cache(maxsize=_KEYS_CACHED)(partial(side.claim_key, secret))

    def key(self, kind: str, value: str) -> str:
        return self._key(kind, value)

    def forget_keys(self) -> None:
        """Drop the cached keys: the emails and usernames they were computed from are personal
        data, kept no longer than the claims (an erasure, a changed email)."""
        self._key.cache_clear()

    def owner(self, kind: str, value: str, uow: UnitOfWork | None = None) -> UUID | None:
        """Who holds a unique value: as `uow` left it, else as stored."""
        return self.key_owner(kind, self.key(kind, value), uow)

    def key_owner(self, kind: str, key: str, uow: UnitOfWork | None = None) -> UUID | None:
        if uow is not None:
            known, owner = uow.claimed(kind, key)
            if known:
                return owner
        row = self.side.select_one(side.SELECT_CLAIM_OWNER, (kind, key))
        return None if row is None else UUID(row["owner_id"])

    def email_key_as_given(self, email: Any) -> str | None:
        """The claim key of an email as given, unvalidated, for look-ups (validating an email
        costs ~30 us, and an import names a user by email on every line). Sound because email
        keys are casefolded: an ASCII email that a stored key matches is, up to case, the
        normal form of a valid email, so validating it would give the same key. A miss proves
        nothing; the caller then validates and looks again."""
        if not isinstance(email, str):
            return None
        text = email.strip()
        return self.key(EMAIL, text) if text and text.isascii() else None

    def email_owner(self, email: Any, uow: UnitOfWork | None = None) -> UUID | None:
        """The user holding this email (case-insensitive)."""
        as_given = self.email_key_as_given(email)
        if as_given is not None and (owner := self.key_owner(EMAIL, as_given, uow)) is not None:
            return owner
        key = self.key(EMAIL, valid(Email, email, "email"))
        return None if key == as_given else self.key_owner(EMAIL, key, uow)

    def claim(self, uow: UnitOfWork, kind: str, value: str, owner_id: UUID) -> None:
        key = self.key(kind, value)
        uow.write(side.claim(kind, key, owner_id))
        uow.claims[(kind, key)] = owner_id

    def release(self, uow: UnitOfWork, kind: str, value: str) -> None:
        key = self.key(kind, value)
        uow.write(side.release(kind, key))
        self.forget_keys()
        uow.claims[(kind, key)] = None

    def prefetch(self, uow: UnitOfWork, wanted: Iterable[tuple[str, str]]) -> None:
        """Look up, a few queries per kind, who holds these unique values; `uow` then answers
        its own look-ups. A value claimed concurrently meanwhile makes the batch's commit
        fail, and its lines are re-run one by one."""
        keys: dict[str, set[str]] = {}
        for kind, value in wanted:
            if kind == EMAIL and (as_given := self.email_key_as_given(value)) is not None:
                if (kind, as_given) not in uow.claims:
                    keys.setdefault(kind, set()).add(as_given)
                continue
            try:
                key = self.key(kind, valid(KINDS[kind], value, kind))
            except ValidationError:
                continue
            if (kind, key) not in uow.claims:
                keys.setdefault(kind, set()).add(key)
        for kind, kind_keys in keys.items():
            rows = select_in(
                self.side,
                "SELECT key, owner_id FROM ledger_claims WHERE kind = ? AND key IN ({marks})",
                sorted(kind_keys),
                kind,
            )
            owners = {row["key"]: UUID(row["owner_id"]) for row in rows}
            for key in kind_keys:
                uow.claims[(kind, key)] = owners.get(key)


class ClaimReferences:
    """Users named by id or email, accounts by id or open account name, looked up in the
    claims as `uow` (a batch, or None) leaves them: the `References` commands parse with."""

    def __init__(self, claims: Claims, uow: UnitOfWork | None = None) -> None:
        self.claims = claims
        self.uow = uow

    def resolve_user(self, user: object, what: str = "user") -> UUID:
        """An email that no user holds is NotFound."""
        found = references.user_id(user, self.user_id_for_email, what)
        if found is None:
            raise NotFound(f"{what} {shown(user)} not found")
        return found

    def resolve_account(self, account: object, what: str = "account") -> UUID:
        found = references.account_id(account, self.account_id_for_name, what)
        if found is None:
            raise NotFound(f"{what} {shown(account)} not found (among open accounts)")
        return found

    def user_id_for_email(self, email: str) -> UUID | None:
        return self.claims.email_owner(email, self.uow)

    def account_id_for_name(self, name: str) -> UUID | None:
        account_name = valid(AccountName, name, "account name")
        return self.claims.owner(ACCOUNT_NAME, account_name, self.uow)
