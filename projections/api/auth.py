"""Logins and access tokens. A login does the same password work whether or not the email is
known, so its timing tells nothing about who has an account. Tokens are signed, expire, and
are checked against the ledger's current state on every request: a token issued before the
user's last deactivation, erasure or password change never works again."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from functools import cache
from typing import Any, Final, Literal
from uuid import UUID

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from eventsourcing.application import AggregateNotFoundError
from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import Integer, Select, String, bindparam, column, func, select, table

from ledger.application import Ledger
from ledger.domain import Account, User, project
from ledger.domain.users import FailedLoginReason
from ledger.storage import side_tables as side
from ledger.storage.credentials import credential_version
from ledger.storage.settings import is_postgres, whole_number_setting
from projections.prepared import PreparedReader
from projections.read_model import projected_position

TTL_VARIABLE: Final = "LEDGER_TOKEN_TTL"
DEFAULT_TTL: Final = 6 * 3600
WRONG_CREDENTIALS: Final = "wrong email or password, or the user is not active"
UNKNOWN_EMAIL: Final = "unknown-email"
SIGNING_SECRET: Final = "api-token"  # its name in ledger_secrets


class Unauthorized(Exception):
    """No, a bad or an expired token."""


class NotInLoop(Exception):
    """Checking this token needs more than the one confirming query on the calling thread's
    own connection (the signing secret read, a user rebuilt from their events): check it in
    a worker thread instead."""


class LoginRefused(Exception):
    """No token: `reason` is a FailedLoginReason, or UNKNOWN_EMAIL."""

    def __init__(self, reason: FailedLoginReason | Literal["unknown-email"]) -> None:
        super().__init__(reason)
        self.reason = reason


def token_ttl() -> int:
    """Seconds a token lasts: `LEDGER_TOKEN_TTL`, else 6 hours (ValidationError if invalid)."""
    ttl = whole_number_setting(TTL_VARIABLE, minimum=1)
    return DEFAULT_TTL if ttl is None else ttl


@cache
def _dummy_hash() -> str:
    """An argon2 hash of a password no one knows, made once, to verify against when there is
    no real hash to verify (unknown email, erased user, no password set)."""
    return PasswordHasher().hash(secrets.token_urlsafe(32))


class _OnceDerivedSigner(TimestampSigner):
    """itsdangerous' timestamp signer, deriving its HMAC key from each secret once instead of
    on every signature (two hashes a token check); one per serializer, for its one secret."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._derived: dict[bytes, bytes] = {}

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        given = self.secret_keys[-1] if secret_key is None else secret_key
        as_bytes = given.encode() if isinstance(given, str) else given
        derived = self._derived.get(as_bytes)
        if derived is None:
            derived = super().derive_key(as_bytes)
            if len(self._derived) < len(self.secret_keys):  # bounded by the signer's keys
                self._derived[as_bytes] = derived
        return derived


class _TokenSerializer(URLSafeTimedSerializer):
    """The token format (URL-safe, timed, salted), its signer made once."""

    default_signer = _OnceDerivedSigner  # `signer` would be hidden by __init__'s own

    def __init__(self, secret: bytes) -> None:
        super().__init__(secret, salt="auth-token")
        self._own_signer: Any = None

    def make_signer(self, salt: str | bytes | None = None) -> Any:
        if salt is not None and salt != self.salt:
            return super().make_signer(salt)
        if self._own_signer is None:
            self._own_signer = super().make_signer()
        return self._own_signer


@dataclass(frozen=True)
class _Checked:
    """A user as rebuilt from their events, and what their account's events said then."""

    user: User
    account_version: int | None  # None: no aggregate with the user's account id
    account_open: bool


@cache
def _current_state(events_table: str, schema: str | None, position_column: str) -> Select[Any]:
    """One statement, so one round trip and one snapshot: the current versions of a user and
    of an account in the event store (None: no events), the user's password hash, a named
    secret, the log's head and the read models' position. A version is the primary key's last
    entry for the aggregate, the head the last of the log's index: index look-ups."""
    events = table(
        events_table,
        column("originator_id"),
        column("originator_version", Integer),
        column(position_column, Integer),
        schema=schema,
    )
    credentials = table("ledger_credentials", column("user_id"), column("password_hash", String))
    secrets_table = table("ledger_secrets", column("name"), column("value", String))

    def version(aggregate: str) -> Any:
        return (
            select(func.max(events.c.originator_version))
            .where(events.c.originator_id == bindparam(aggregate))
            .scalar_subquery()
        )

    return select(
        version("user").label("user_version"),
        version("account").label("account_version"),
        select(credentials.c.password_hash)
        .where(credentials.c.user_id == bindparam("user_key"))
        .scalar_subquery()
        .label("password_hash"),
        select(secrets_table.c.value)
        .where(secrets_table.c.name == bindparam("secret_name"))
        .scalar_subquery()
        .label("secret"),
        select(func.max(events.c[position_column])).scalar_subquery().label("log_head"),
        projected_position().scalar_subquery().label("projected"),
    )


class TokenService:
    """Issues and checks tokens. Each process keeps the users it rebuilt from their events
    (and whether their account was open) and the signing secret, and confirms them on every
    request with one query (`_current_state`): a user or account with a new event is rebuilt,
    a new password hash or signing secret is seen, at once, whichever process recorded it."""

    cache_size = 10_000  # users; when full it starts again empty

    def __init__(self, ledger: Ledger, ttl: int, reader: PreparedReader) -> None:
        self.ledger = ledger
        self.ttl = ttl
        self.reader = reader
        recorder: Any = ledger.recorder
        if is_postgres(ledger.url):
            self._state = _current_state(
                recorder.events_table_name, recorder.datastore.schema, "notification_id"
            )
            self._event_id: Callable[[UUID], Any] = lambda aggregate_id: aggregate_id
        else:  # eventsourcing's SQLite recorder: ids as 32 hex digits, positions as rowids
            self._state = _current_state(recorder.events_table_name, None, "rowid")
            self._event_id = lambda aggregate_id: aggregate_id.hex
        self._checked: dict[UUID, _Checked] = {}
        self._signing: tuple[bytes, URLSafeTimedSerializer] | None = None

    def _signer(self, secret: bytes | None = None) -> tuple[bytes, URLSafeTimedSerializer]:
        """(secret, serializer) of `secret`, else of the secret last read (read at first use;
        Unauthorized if none is stored: no token can be valid then)."""
        signing = self._signing
        if secret is None:
            secret = self._read_secret() if signing is None else signing[0]
        if secret is None:
            raise Unauthorized("the token is not valid")
        if signing is None or signing[0] != secret:
            signing = (secret, _TokenSerializer(secret))
            self._signing = signing
        return signing

    def _stored_secret(self) -> bytes:
        """The signing secret, made now if none is stored (to sign a token with)."""
        return self.ledger.named_secret(SIGNING_SECRET)

    def _read_secret(self) -> bytes | None:
        """The stored signing secret, if there is one: checking a token only reads (so that
        it may run where a write could wait for a lock); a secret made now would not have
        signed the token anyway."""
        row = self.ledger.side.select_one(side.SELECT_SECRET, (SIGNING_SECRET,))
        return None if row is None else bytes.fromhex(row["value"])

    def log_in(self, user_id: UUID | None, password: str) -> str:
        """A token for the user (None: the email is unknown) if the password is theirs and
        they may act; else LoginRefused saying why. One argon2 verification in every case."""
        user = None if user_id is None else self._recorded_user(user_id)
        has_password = user is not None and self.ledger.credential_version(user.id) is not None
        if user is not None and has_password:
            right = self.ledger.verify_password(user.id, password)
        else:
            with suppress(VerificationError):
                PasswordHasher().verify(_dummy_hash(), password)
            right = False
        if user is None:
            raise LoginRefused(UNKNOWN_EMAIL)
        if user.erased:
            raise LoginRefused("erased")
        if not has_password:
            raise LoginRefused("no-password")
        if not right:
            raise LoginRefused("wrong-password")
        if not user.active:
            raise LoginRefused("inactive")
        if not self._account_state(user)[1]:
            raise LoginRefused("account-closed")
        claims = {
            "user": str(user.id),
            "credential": self.ledger.credential_version(user.id),
            "version": user.version,  # tokens_valid_from moves past it on deactivation etc.
        }
        return str(self._signer(self._stored_secret())[1].dumps(claims))

    def authenticate(self, header: str | None, *, in_loop: bool = False) -> Recorded:
        """The user a request's Authorization header (the token, or `Bearer <token>`) is for,
        as recorded now. `in_loop`: NotInLoop rather than any read besides the confirming
        query (a check that raised it has changed nothing: run it again without)."""
        if not header:
            raise Unauthorized("no Authorization header: request a token at /api/requestAuthToken")
        token = header.strip()
        if token.lower().startswith("bearer "):
            token = token[7:].strip()
        secret, claims = self._verified(token, in_loop=in_loop)
        checked, state = self._confirmed(claims.user_id, in_loop=in_loop)
        if state.secret != secret:
            # the secret was replaced since this process read it: the stored one decides
            # (none stored: no token was signed with a secret made later)
            if state.secret is None:
                raise Unauthorized("the token is not valid")
            secret, claims = self._verified(token, state.secret)
            checked, state = self._confirmed(claims.user_id, in_loop=in_loop)
        if (
            checked is None
            or not checked.user.active
            or checked.user.erased
            or claims.version < checked.user.tokens_valid_from
            or claims.credential != credential_version(state.password_hash)
            or not checked.account_open
        ):
            raise Unauthorized("the token no longer grants access")
        return Recorded(checked.user, state.log_head, state.projected)

    def _verified(
        self, token: str, secret: bytes | None = None, *, in_loop: bool = False
    ) -> tuple[bytes, _Claims]:
        """(the secret, the claims) of a token signed with `secret`, else with the secret
        last read or, if that refuses the token and another is stored now, with that one."""
        if in_loop and secret is None and self._signing is None:
            raise NotInLoop
        signing = self._signer(secret)
        try:
            return signing[0], _claims(signing[1], token, self.ttl)
        except Unauthorized:
            if secret is not None:
                raise
            if in_loop:
                raise NotInLoop from None
            stored = self._read_secret()
            if stored is None or stored == signing[0]:
                raise
        return self._verified(token, stored)

    def _confirmed(self, user_id: UUID, *, in_loop: bool = False) -> tuple[_Checked | None, _State]:
        """(the user as recorded now, rebuilt only if their or their account's events moved
        on since this process last rebuilt them; what the same query read besides)."""
        known = self._checked.get(user_id)
        user_version, account_version, password_hash, secret, head, projected = self.reader.all(
            *self.confirming(user_id)
        )[0]
        if (
            known is None
            or known.user.version != user_version
            or known.account_version != account_version
        ):
            if in_loop:
                raise NotInLoop
            known = self._rebuilt(user_id)
        stored = None if secret is None else bytes.fromhex(secret)
        return known, _State(password_hash, stored, head or 0, projected or 0)

    def confirming(self, user_id: UUID) -> tuple[Select[Any], dict[str, Any]]:
        """The one query (and its parameters) that confirms a token of `user_id` as recorded
        now, as `authenticate` runs it."""
        known = self._checked.get(user_id)
        account = None if known is None else self._event_id(known.user.account_id)
        parameters = {
            "user": self._event_id(user_id),
            "account": account,
            "user_key": str(user_id),
            "secret_name": SIGNING_SECRET,
        }
        return self._state, parameters

    def _rebuilt(self, user_id: UUID) -> _Checked | None:
        user = self._recorded_user(user_id)
        if user is None:
            self._checked.pop(user_id, None)
            return None
        account_version, account_open = self._account_state(user)
        checked = _Checked(user, account_version, account_open)
        if len(self._checked) >= self.cache_size:
            self._checked.clear()
        self._checked[user_id] = checked
        return checked

    def _recorded_user(self, user_id: UUID) -> User | None:
        """The user as recorded now, not as projected."""
        try:
            user: Any = self.ledger.repository.get(user_id, projector_func=project)
        except AggregateNotFoundError:
            return None
        return user if isinstance(user, User) else None

    def _account_state(self, user: User) -> tuple[int | None, bool]:
        """(the version of the aggregate with the user's account id, None if there is none;
        whether it is an open account)."""
        try:
            account: Any = self.ledger.repository.get(user.account_id, projector_func=project)
        except AggregateNotFoundError:
            return None, False
        return account.version, isinstance(account, Account) and not account.closed


@dataclass(frozen=True)
class Recorded:
    """The user a token is for, as recorded; the log's head and the read models' position,
    read by the same query as the user's version."""

    user: User
    log_head: int
    projected: int


@dataclass(frozen=True)
class _State:
    password_hash: str | None
    secret: bytes | None
    log_head: int
    projected: int


@dataclass(frozen=True)
class _Claims:
    user_id: UUID
    version: int  # the user's version when the token was issued
    credential: Any  # the credential version then


def _claims(serializer: URLSafeTimedSerializer, token: str, ttl: int) -> _Claims:
    try:
        claims: Any = serializer.loads(token, max_age=ttl)
        return _Claims(UUID(claims["user"]), int(claims["version"]), claims.get("credential"))
    except SignatureExpired:
        raise Unauthorized("the token has expired: request a new one") from None
    except (BadSignature, KeyError, TypeError, ValueError):
        raise Unauthorized("the token is not valid") from None
