"""Roles held by a user or an account: each from its grant until it is revoked, or until an end
fixed in advance (`until`), whichever comes first. An end that passes ends the grant by itself;
the expiry event recorded afterwards (`ledger expire`) says so in the log."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from ledger.domain.base import Meta
from ledger.errors import Conflict, NotFound, ValidationError
from ledger.validation import shown


class RoleHolder:
    """Mixed into the User and Account aggregates, which name their own events."""

    granted_event: ClassVar[str]
    revoked_event: ClassVar[str]
    extended_event: ClassVar[str]
    expired_event: ClassVar[str]
    exception_event: ClassVar[str]

    roles: set[str]
    """The roles granted and not yet revoked or recorded as expired."""
    grant_ends: dict[str, datetime]
    """The end fixed in advance of each of `roles` that has one."""

    def record(self, event_class: Any, meta: Meta, **fields: Any) -> None:
        raise NotImplementedError  # LedgerAggregate.record

    def describe(self) -> str:
        raise NotImplementedError

    def check_can_change_roles(self) -> None:
        """Raise if roles can no longer be granted, revoked or extended."""

    def holds(self, role: str, at: datetime) -> bool:
        end = self.grant_ends.get(role)
        return role in self.roles and (end is None or end > at)

    def grant_role(self, role: str, meta: Meta, until: datetime | None = None) -> bool:
        """Grant the role (until `until`, if given); False if it is held already. A grant
        whose end has passed is recorded as expired first."""
        self.check_can_change_roles()
        _check_future(until, meta)
        self._expire({role}, meta)
        if role in self.roles:
            end = self.grant_ends.get(role)
            if until is not None and until != end:
                held = "without an end" if end is None else f"until {end.isoformat()}"
                raise Conflict(
                    f"{self.describe()} holds {shown(role)} already, {held}:"
                    " use extend_grant to move its end"
                )
            return False
        self.record(getattr(self, self.granted_event), meta, role=role, until=until)
        return True

    def revoke_role(self, role: str, meta: Meta) -> bool:
        """Revoke the role; False if it is not held (never granted, or its end has passed)."""
        self.check_can_change_roles()
        if not self.holds(role, meta.timestamp):
            return False
        self.record(getattr(self, self.revoked_event), meta, role=role)
        return True

    def extend_grant(self, role: str, until: datetime, meta: Meta) -> bool:
        """Move the end of a held grant to `until` (later or earlier, never into the past);
        False if it ends then already."""
        self.check_can_change_roles()
        _check_future(until, meta)
        if not self.holds(role, meta.timestamp):
            raise NotFound(f"{self.describe()} holds no grant of {shown(role)} to extend")
        if self.grant_ends.get(role) == until:
            return False
        self.record(getattr(self, self.extended_event), meta, role=role, until=until)
        return True

    def held_now(self, at: datetime) -> set[str]:
        return {role for role in self.roles if self.holds(role, at)}

    def approve_exception(self, rules: list[str], role: str, approved_by: str, meta: Meta) -> None:
        """Record that the grant of `role` breaks these separation-of-duties rules, with an
        exception that `approved_by` approved (the command's reason says why)."""
        for rule in rules:
            self.record(
                getattr(self, self.exception_event),
                meta,
                rule=rule,
                role=role,
                approved_by=approved_by,
            )

    def expire(self, meta: Meta) -> int:
        """Record the expiry of every grant whose end has passed; return how many."""
        return self._expire(set(self.grant_ends), meta)

    def _expire(self, roles: set[str], meta: Meta) -> int:
        ended = sorted(
            (role, end)
            for role, end in self.grant_ends.items()
            if role in roles and role in self.roles and end <= meta.timestamp
        )
        for role, end in ended:
            self.record(getattr(self, self.expired_event), meta, role=role, at=end)
        return len(ended)


def _check_future(until: datetime | None, meta: Meta) -> None:
    if until is not None and until <= meta.timestamp:
        raise ValidationError(
            f"invalid until {shown(until)}: it is not after the time of the command "
            f"({meta.timestamp.isoformat()}); a grant must end in the future"
        )
