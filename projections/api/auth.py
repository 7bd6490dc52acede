"""Access tokens: signed, expiring, and checked against the ledger's current state on every
request, so a deactivated, erased or re-passworded user's token stops working at once."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from ledger.application import Ledger
from ledger.domain import Account, User, project

DEFAULT_TTL = 6 * 3600
WRONG_CREDENTIALS = "wrong email or password, or the user is not active"


class Unauthorized(Exception):
    """No, a bad or an expired token; or wrong credentials."""


@dataclass(frozen=True)
class TokenService:
    ledger: Ledger
    ttl: int

    @classmethod
    def for_ledger(cls, ledger: Ledger) -> TokenService:
        return cls(ledger, int(os.environ.get("LEDGER_TOKEN_TTL", DEFAULT_TTL)))

    def _serializer(self) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(self.ledger.named_secret("api-token"), salt="auth-token")

    def issue(self, user_id: UUID) -> str:
        version = self.ledger.credential_version(user_id)
        return str(self._serializer().dumps({"user": str(user_id), "credential": version}))

    def authenticate(self, header: str | None) -> UUID:
        """The user a request's Authorization header (the token, or `Bearer <token>`) is for."""
        if not header:
            raise Unauthorized("no Authorization header: request a token at /api/requestAuthToken")
        token = header.strip()
        if token.lower().startswith("bearer "):
            token = token[7:].strip()
        try:
            claims: Any = self._serializer().loads(token, max_age=self.ttl)
            user_id = UUID(claims["user"])
        except SignatureExpired:
            raise Unauthorized("the token has expired: request a new one") from None
        except (BadSignature, KeyError, TypeError, ValueError):
            raise Unauthorized("the token is not valid") from None
        if not self.may_act(user_id) or claims.get("credential") != (
            self.ledger.credential_version(user_id)
        ):
            raise Unauthorized("the token no longer grants access")
        return user_id

    def may_act(self, user_id: UUID) -> bool:
        """Active, not erased, in an open account — as recorded now, not as projected."""
        try:
            user: Any = self.ledger.repository.get(user_id, projector_func=project)
            if not isinstance(user, User) or not user.active or user.erased:
                return False
            account: Any = self.ledger.repository.get(user.account_id, projector_func=project)
        except AggregateNotFoundError:
            return False
        return isinstance(account, Account) and not account.closed
