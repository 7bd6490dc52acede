"""Logins and access tokens. A login does the same password work whether or not the email is
known, so its timing tells nothing about who has an account. Tokens are signed, expire, and
are checked against the ledger's current state on every request: a token issued before the
user's last deactivation, erasure or password change never works again."""

from __future__ import annotations

import secrets
from contextlib import suppress
from dataclasses import dataclass
from functools import cache
from typing import Any, Final, Literal
from uuid import UUID

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from eventsourcing.application import AggregateNotFoundError
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from ledger.application import Ledger
from ledger.domain import Account, User, project
from ledger.domain.users import FailedLoginReason
from ledger.storage.settings import whole_number_setting

TTL_VARIABLE: Final = "LEDGER_TOKEN_TTL"
DEFAULT_TTL: Final = 6 * 3600
WRONG_CREDENTIALS: Final = "wrong email or password, or the user is not active"
UNKNOWN_EMAIL: Final = "unknown-email"


class Unauthorized(Exception):
    """No, a bad or an expired token."""


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


@dataclass(frozen=True)
class TokenService:
    ledger: Ledger
    ttl: int

    def _serializer(self) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(self.ledger.named_secret("api-token"), salt="auth-token")

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
        if not self._account_open(user):
            raise LoginRefused("account-closed")
        claims = {
            "user": str(user.id),
            "credential": self.ledger.credential_version(user.id),
            "version": user.version,  # tokens_valid_from moves past it on deactivation etc.
        }
        return str(self._serializer().dumps(claims))

    def authenticate(self, header: str | None) -> User:
        """The user a request's Authorization header (the token, or `Bearer <token>`) is for,
        as recorded now."""
        if not header:
            raise Unauthorized("no Authorization header: request a token at /api/requestAuthToken")
        token = header.strip()
        if token.lower().startswith("bearer "):
            token = token[7:].strip()
        try:
            claims: Any = self._serializer().loads(token, max_age=self.ttl)
            user_id = UUID(claims["user"])
            issued_at_version = int(claims["version"])
        except SignatureExpired:
            raise Unauthorized("the token has expired: request a new one") from None
        except (BadSignature, KeyError, TypeError, ValueError):
            raise Unauthorized("the token is not valid") from None
        user = self._recorded_user(user_id)
        if (
            user is None
            or not user.active
            or user.erased
            or issued_at_version < user.tokens_valid_from
            or claims.get("credential") != self.ledger.credential_version(user_id)
            or not self._account_open(user)
        ):
            raise Unauthorized("the token no longer grants access")
        return user

    def _recorded_user(self, user_id: UUID) -> User | None:
        """The user as recorded now, not as projected."""
        try:
            user: Any = self.ledger.repository.get(user_id, projector_func=project)
        except AggregateNotFoundError:
            return None
        return user if isinstance(user, User) else None

    def _account_open(self, user: User) -> bool:
        try:
            account: Any = self.ledger.repository.get(user.account_id, projector_func=project)
        except AggregateNotFoundError:
            return False
        return isinstance(account, Account) and not account.closed
