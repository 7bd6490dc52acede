"""The Account aggregate: a tenant with its branding, consultancy, roles, members, annotations."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID, uuid4

from ledger.domain.base import LedgerAggregate, Meta
from ledger.domain.grants import RoleHolder
from ledger.errors import Conflict, NotFound


class AnnotationKey(NamedTuple):
    """What makes two annotations on one account the same annotation."""

    content: str
    start: datetime
    end: datetime
    belief_time: datetime | None
    source_name: str | None
    source_user_id: UUID | None
    type: str


class Account(LedgerAggregate, RoleHolder):
    granted_event = "AccountRoleGranted"
    revoked_event = "AccountRoleRevoked"
    extended_event = "AccountRoleGrantExtended"
    expired_event = "AccountRoleExpired"
    exception_event = "AccountSodExceptionApproved"

    def __init__(self) -> None:
        self.name = ""
        self.primary_color: str | None = None
        self.secondary_color: str | None = None
        self.logo_url: str | None = None
        self.consultancy_account_id: UUID | None = None
        self.roles: set[str] = set()
        self.grant_ends: dict[str, datetime] = {}
        self.members: set[UUID] = set()
        self.closed = False
        self.annotations: dict[UUID, AnnotationKey] = {}
        self.annotation_ids: dict[AnnotationKey, UUID] = {}
        self.removed_annotations: set[UUID] = set()

    class AccountCreated(LedgerAggregate.Created):
        name: str
        primary_color: str | None
        secondary_color: str | None
        logo_url: str | None
        consultancy_account_id: UUID | None

        def apply(self, account: Account) -> None:  # type: ignore[override]
            account.name = self.name
            account.primary_color = self.primary_color
            account.secondary_color = self.secondary_color
            account.logo_url = self.logo_url
            account.consultancy_account_id = self.consultancy_account_id
            account.roles = set()
            account.grant_ends = {}
            account.members = set()
            account.closed = False
            account.annotations = {}
            account.annotation_ids = {}
            account.removed_annotations = set()

    class AccountUpdated(LedgerAggregate.Event):
        """`changes` maps each changed field (name, colours, logo_url) to its new value."""

        changes: dict[str, Any]

        def apply(self, account: Account) -> None:  # type: ignore[override]
            for field, value in self.changes.items():
                setattr(account, field, value)

    class ConsultancySet(LedgerAggregate.Event):
        consultancy_account_id: UUID | None

        def apply(self, account: Account) -> None:  # type: ignore[override]
            account.consultancy_account_id = self.consultancy_account_id

    class AccountRoleGranted(LedgerAggregate.Event):
        """`until`: the end fixed in advance (None: until revoked)."""

        class_version = 2
        role: str
        until: datetime | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            """Version 1 had no end fixed in advance: every grant lasted until revoked."""
            state["until"] = None

        def apply(self, account: Account) -> None:  # type: ignore[override]
            account.roles.add(self.role)
            if self.until is not None:
                account.grant_ends[self.role] = self.until

    class AccountRoleRevoked(LedgerAggregate.Event):
        role: str

        def apply(self, account: Account) -> None:  # type: ignore[override]
            account.roles.discard(self.role)
            account.grant_ends.pop(self.role, None)

    class AccountRoleGrantExtended(LedgerAggregate.Event):
        """The held grant of `role` now ends at `until`."""

        role: str
        until: datetime

        def apply(self, account: Account) -> None:  # type: ignore[override]
            account.grant_ends[self.role] = self.until

    class AccountSodExceptionApproved(LedgerAggregate.Event):
        """The grant of `role` breaks separation-of-duties rule `rule`, by an exception that
        `approved_by` approved (the event's reason says why)."""

        rule: str
        role: str
        approved_by: str

        def apply(self, account: Account) -> None:  # type: ignore[override]
            pass

    class AccountRoleExpired(LedgerAggregate.Event):
        """The grant of `role` ended at `at`, the end fixed in advance (recorded later)."""

        role: str
        at: datetime

        def apply(self, account: Account) -> None:  # type: ignore[override]
            account.roles.discard(self.role)
            account.grant_ends.pop(self.role, None)

    class UserJoined(LedgerAggregate.Event):
        """A user was created in this account (so closing it finds every member)."""

        user_id: UUID

        def apply(self, account: Account) -> None:  # type: ignore[override]
            account.members.add(self.user_id)

    class UserLeft(LedgerAggregate.Event):
        """A user moved from this account to another one."""

        user_id: UUID

        def apply(self, account: Account) -> None:  # type: ignore[override]
            account.members.discard(self.user_id)

    class AnnotationAdded(LedgerAggregate.Event):
        annotation_id: UUID
        content: str
        start: datetime
        end: datetime
        belief_time: datetime | None
        source_name: str | None
        source_user_id: UUID | None
        type: str

        def key(self) -> AnnotationKey:
            return AnnotationKey(
                self.content,
                self.start,
                self.end,
                self.belief_time,
                self.source_name,
                self.source_user_id,
                self.type,
            )

        def apply(self, account: Account) -> None:  # type: ignore[override]
            key = self.key()
            account.annotations[self.annotation_id] = key
            account.annotation_ids[key] = self.annotation_id

    class AnnotationRemoved(LedgerAggregate.Event):
        annotation_id: UUID

        def apply(self, account: Account) -> None:  # type: ignore[override]
            key = account.annotations.pop(self.annotation_id)
            del account.annotation_ids[key]
            account.removed_annotations.add(self.annotation_id)

    class AccountClosed(LedgerAggregate.Event):
        def apply(self, account: Account) -> None:  # type: ignore[override]
            account.closed = True

    @classmethod
    def create(
        cls,
        *,
        name: str,
        primary_color: str | None,
        secondary_color: str | None,
        logo_url: str | None,
        consultancy_account_id: UUID | None,
        meta: Meta,
    ) -> Account:
        return cls._create(
            cls.AccountCreated,
            id=uuid4(),
            name=name,
            primary_color=primary_color,
            secondary_color=secondary_color,
            logo_url=logo_url,
            consultancy_account_id=consultancy_account_id,
            **meta.fields(),
        )

    def describe(self) -> str:
        return f"account {self.name!r}"

    def check_open(self) -> None:
        if self.closed:
            raise Conflict(f"{self.describe()} ({self.id}) is closed and accepts no commands")

    def update(self, changes: dict[str, Any], meta: Meta) -> bool:
        self.check_open()
        changed = {
            field: value for field, value in changes.items() if getattr(self, field) != value
        }
        if not changed:
            return False
        self.record(self.AccountUpdated, meta, changes=changed)
        return True

    def set_consultancy(self, consultancy_account_id: UUID | None, meta: Meta) -> bool:
        self.check_open()
        if consultancy_account_id == self.consultancy_account_id:
            return False
        self.record(self.ConsultancySet, meta, consultancy_account_id=consultancy_account_id)
        return True

    def check_can_change_roles(self) -> None:
        self.check_open()

    def add_member(self, user_id: UUID, meta: Meta) -> None:
        self.check_open()
        self.record(self.UserJoined, meta, user_id=user_id)

    def remove_member(self, user_id: UUID, meta: Meta) -> None:
        """A member moves elsewhere; recorded even when this account is closed (the user,
        deactivated when it closed, may move on to an open one)."""
        if user_id in self.members:
            self.record(self.UserLeft, meta, user_id=user_id)

    def add_annotation(self, key: AnnotationKey, meta: Meta) -> tuple[UUID, bool]:
        """Return the annotation's id and whether it is new."""
        self.check_open()
        existing = self.annotation_ids.get(key)
        if existing is not None:
            return existing, False
        annotation_id = uuid4()
        self.record(self.AnnotationAdded, meta, annotation_id=annotation_id, **key._asdict())
        return annotation_id, True

    def remove_annotation(self, annotation_id: UUID, meta: Meta) -> bool:
        self.check_open()
        if annotation_id in self.removed_annotations:
            return False
        if annotation_id not in self.annotations:
            raise NotFound(f"annotation {annotation_id} not found on {self.describe()}")
        self.record(self.AnnotationRemoved, meta, annotation_id=annotation_id)
        return True

    def close(self, meta: Meta) -> None:
        """Revoke every role and close; the application deactivates the members. Grants whose
        end has passed are recorded as expired, not revoked."""
        self.expire(meta)
        for role in sorted(self.roles):
            self.revoke_role(role, meta)
        self.record(self.AccountClosed, meta)
