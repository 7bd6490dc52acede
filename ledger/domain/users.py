"""The User aggregate: identity, roles, activity and logins of one person."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final, Literal
from uuid import UUID, uuid4

from ledger.domain.base import ERASED, LedgerAggregate, Meta
from ledger.domain.grants import RoleHolder
from ledger.errors import Conflict, InactiveUser

DEFAULT_TIMEZONE: Final = "Europe/Amsterdam"
FailedLoginReason = Literal["wrong-password", "no-password", "inactive", "erased", "account-closed"]


class User(LedgerAggregate, RoleHolder):
    granted_event = "RoleGranted"
    revoked_event = "RoleRevoked"
    extended_event = "RoleGrantExtended"
    expired_event = "RoleExpired"
    exception_event = "SodExceptionApproved"

    def __init__(self) -> None:
        self.email = ""
        self.username = ""
        self.account_id = UUID(int=0)  # set by UserCreated
        self.timezone = DEFAULT_TIMEZONE
        self.active = True
        self.erased = False
        self.roles: set[str] = set()
        self.grant_ends: dict[str, datetime] = {}
        self.login_count = 0
        self.last_login_at: datetime | None = None
        self.last_seen_at: datetime | None = None
        self.created_at: datetime | None = None
        # the version of the last deactivation, erasure or password change: tokens issued
        # before it (at a lower version) never work again, even after a reactivation
        self.tokens_valid_from = 0

    class UserCreated(LedgerAggregate.Created):
        personal_fields = ("email", "username")
        class_version = 2
        email: str
        username: str
        account_id: UUID
        timezone: str

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            """Version 1 had no time zone: every user was in the platform's default zone."""
            state["timezone"] = DEFAULT_TIMEZONE

        def apply(self, user: User) -> None:  # type: ignore[override]
            user.email = self.email
            user.username = self.username
            user.account_id = self.account_id
            user.timezone = self.timezone
            user.active = True
            user.erased = False
            user.roles = set()
            user.grant_ends = {}
            user.login_count = 0
            user.last_login_at = None
            user.last_seen_at = None
            user.created_at = self.timestamp

    class UserUpdated(LedgerAggregate.Event):
        """Only the changed fields are set; the others are None."""

        personal_fields = ("email", "username")
        email: str | None
        username: str | None
        timezone: str | None

        def apply(self, user: User) -> None:  # type: ignore[override]
            user.email = self.email or user.email
            user.username = self.username or user.username
            user.timezone = self.timezone or user.timezone

    class UserMoved(LedgerAggregate.Event):
        """The user moved from account `from_account_id` to account `account_id`."""

        from_account_id: UUID
        account_id: UUID

        def apply(self, user: User) -> None:  # type: ignore[override]
            user.account_id = self.account_id

    class RoleGranted(LedgerAggregate.Event):
        """`until`: the end fixed in advance (None: until revoked)."""

        class_version = 2
        role: str
        until: datetime | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            """Version 1 had no end fixed in advance: every grant lasted until revoked."""
            state["until"] = None

        def apply(self, user: User) -> None:  # type: ignore[override]
            user.roles.add(self.role)
            if self.until is not None:
                user.grant_ends[self.role] = self.until

    class RoleRevoked(LedgerAggregate.Event):
        role: str

        def apply(self, user: User) -> None:  # type: ignore[override]
            user.roles.discard(self.role)
            user.grant_ends.pop(self.role, None)

    class RoleGrantExtended(LedgerAggregate.Event):
        """The held grant of `role` now ends at `until`."""

        role: str
        until: datetime

        def apply(self, user: User) -> None:  # type: ignore[override]
            user.grant_ends[self.role] = self.until

    class SodExceptionApproved(LedgerAggregate.Event):
        """The grant of `role` breaks separation-of-duties rule `rule`, by an exception that
        `approved_by` approved (the event's reason says why)."""

        rule: str
        role: str
        approved_by: str

        def apply(self, user: User) -> None:  # type: ignore[override]
            pass

    class RoleExpired(LedgerAggregate.Event):
        """The grant of `role` ended at `at`, the end fixed in advance (recorded later)."""

        role: str
        at: datetime

        def apply(self, user: User) -> None:  # type: ignore[override]
            user.roles.discard(self.role)
            user.grant_ends.pop(self.role, None)

    class UserDeactivated(LedgerAggregate.Event):
        def apply(self, user: User) -> None:  # type: ignore[override]
            user.active = False
            user.tokens_valid_from = self.originator_version

    class UserReactivated(LedgerAggregate.Event):
        def apply(self, user: User) -> None:  # type: ignore[override]
            user.active = True

    class LoginRecorded(LedgerAggregate.Event):
        personal_fields = ("ip",)
        at: datetime
        ip: str | None

        def apply(self, user: User) -> None:  # type: ignore[override]
            user.login_count += 1
            if user.last_login_at is None or self.at > user.last_login_at:
                user.last_login_at = self.at

    class LoginFailed(LedgerAggregate.Event):
        """Someone failed to log in as this user; never holds the password they tried."""

        personal_fields = ("ip",)
        at: datetime
        ip: str | None
        reason_kind: str

        def apply(self, user: User) -> None:  # type: ignore[override]
            pass

    class LastSeenRecorded(LedgerAggregate.Event):
        at: datetime

        def apply(self, user: User) -> None:  # type: ignore[override]
            user.last_seen_at = self.at

    class PasswordChanged(LedgerAggregate.Event):
        """Says that the password changed; the hash lives in the credential table."""

        def apply(self, user: User) -> None:  # type: ignore[override]
            user.tokens_valid_from = self.originator_version

    class UserErased(LedgerAggregate.Event):
        def apply(self, user: User) -> None:  # type: ignore[override]
            user.email = ERASED
            user.username = ERASED
            user.erased = True
            user.tokens_valid_from = self.originator_version

    @classmethod
    def create(
        cls, *, email: str, username: str, account_id: UUID, timezone: str, meta: Meta
    ) -> User:
        return cls._create(
            cls.UserCreated,
            id=uuid4(),
            email=email,
            username=username,
            account_id=account_id,
            timezone=timezone,
            **meta.fields(),
        )

    def describe(self) -> str:
        return f"user {self.id}" if self.erased else f"user {self.email!r}"

    def _check_not_erased(self) -> None:
        if self.erased:
            raise Conflict(f"user {self.id} is erased and accepts no further commands")

    def update(
        self, meta: Meta, *, email: str | None, username: str | None, timezone: str | None
    ) -> bool:
        self._check_not_erased()
        email = email if email is not None and email != self.email else None
        username = username if username is not None and username != self.username else None
        timezone = timezone if timezone is not None and timezone != self.timezone else None
        if email is None and username is None and timezone is None:
            return False
        self.record(self.UserUpdated, meta, email=email, username=username, timezone=timezone)
        return True

    def move(self, account_id: UUID, meta: Meta) -> bool:
        """Move to another account (False if already in it)."""
        self._check_not_erased()
        if account_id == self.account_id:
            return False
        self.record(self.UserMoved, meta, from_account_id=self.account_id, account_id=account_id)
        return True

    def check_can_change_roles(self) -> None:
        self._check_not_erased()

    def deactivate(self, meta: Meta) -> bool:
        if not self.active:
            return False
        self.record(self.UserDeactivated, meta)
        return True

    def reactivate(self, meta: Meta) -> bool:
        self._check_not_erased()
        if self.active:
            return False
        self.record(self.UserReactivated, meta)
        return True

    def record_login(self, at: datetime, ip: str | None, meta: Meta) -> None:
        self._check_active("record a login for")
        self.record(self.LoginRecorded, meta, at=at, ip=ip)

    def record_failed_login(
        self, at: datetime, ip: str | None, reason_kind: str, meta: Meta
    ) -> None:
        """Recorded whatever the user's state: failures against inactive and erased users are
        the ones a security team wants to see. An erased user's key is gone, so the address
        of an attempt on them cannot be sealed as personal data and is left out."""
        self.record(
            self.LoginFailed, meta, at=at, ip=None if self.erased else ip, reason_kind=reason_kind
        )

    def record_last_seen(self, at: datetime, resolution: timedelta, meta: Meta) -> bool:
        self._check_active("record last-seen for")
        # a difference, not last_seen_at + resolution: that sum can pass year 9999
        if self.last_seen_at is not None and at - self.last_seen_at < resolution:
            return False
        self.record(self.LastSeenRecorded, meta, at=at)
        return True

    def change_password(self, meta: Meta) -> None:
        self._check_not_erased()
        self.record(self.PasswordChanged, meta)

    def erase(self, meta: Meta) -> bool:
        if self.erased:
            return False
        self.deactivate(meta)
        self.record(self.UserErased, meta)
        return True

    def _check_active(self, doing: str) -> None:
        self._check_not_erased()
        if not self.active:
            raise InactiveUser(f"cannot {doing} inactive {self.describe()}")
