"""Who may read what, for the read API: its callers and models put to the one set of access
rules (`ledger.access_policy`), which the write side's permission checks use too.

`admin` and `admin-reader` read everything; a user reads their own account and its users; a
`consultant` reads the client accounts whose consultancy is their own account, and their
users. A user's audit log: the user, the account-admins of their account and its consultants;
an account's audit log: its account-admins and consultants (and the admins).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from ledger import access_policy as rules
from projections.models import AccountModel, UserModel

READ_ALL = rules.READ_ALL


class Someone(Protocol):
    """A user as the access rules see them (the user as recorded, or a read model's)."""

    @property
    def id(self) -> UUID: ...

    @property
    def account_id(self) -> UUID: ...


@dataclass(frozen=True)
class Principal:
    """The authenticated caller, with their effective roles now."""

    user: Someone
    roles: frozenset[str]

    @property
    def caller(self) -> rules.Caller:
        return rules.Caller(self.user.id, self.user.account_id, self.roles)

    @property
    def reads_all(self) -> bool:
        return rules.reads_all(self.caller)

    def is_consultant_of(self, account: AccountModel) -> bool:
        return rules.is_consultant_of(self.caller, _tenant(account))

    def is_account_admin_of(self, account: AccountModel) -> bool:
        return rules.is_account_admin_of(self.caller, _tenant(account))


def _tenant(account: AccountModel) -> rules.Tenant:
    return rules.Tenant(account.id, account.consultancy_account_id)


def can_read_account(caller: Principal, account: AccountModel) -> bool:
    return rules.can_read_account(caller.caller, _tenant(account))


def can_read_user(caller: Principal, user: UserModel, account: AccountModel) -> bool:
    """`account` is the user's account."""
    return rules.can_read_user(caller.caller, user.id, _tenant(account))


def can_read_user_audit_log(caller: Principal, user: UserModel, account: AccountModel) -> bool:
    return rules.can_read_user_audit_log(caller.caller, user.id, _tenant(account))


def can_read_account_audit_log(caller: Principal, account: AccountModel) -> bool:
    return rules.can_read_account_audit_log(caller.caller, _tenant(account))


def audit_logs_readable(
    caller: Principal, accounts: Iterable[AccountModel]
) -> frozenset[UUID] | None:
    """The accounts whose audit logs (their own events and their users') the caller may read,
    of `accounts`; None: every audit log. Besides these, a caller reads their own user's."""
    return rules.audit_logs_readable(caller.caller, (_tenant(a) for a in accounts))
