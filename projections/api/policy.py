"""Who may read what: the one place for access decisions, as FlexMeasures' policy.

`admin` and `admin-reader` read everything; a user reads their own account and its users; a
`consultant` reads the client accounts whose consultancy is their own account, and their
users. A user's audit log: the user, the account-admins of their account and its consultants;
an account's audit log: its account-admins and consultants (and the admins).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from uuid import UUID

from projections.models import AccountModel, UserModel

READ_ALL = frozenset({"admin", "admin-reader"})


@dataclass(frozen=True)
class Principal:
    """The authenticated caller, with their effective roles now."""

    user: UserModel
    roles: frozenset[str]

    @property
    def reads_all(self) -> bool:
        return bool(self.roles & READ_ALL)

    def is_consultant_of(self, account: AccountModel) -> bool:
        return "consultant" in self.roles and (
            account.consultancy_account_id is not None
            and account.consultancy_account_id == self.user.account_id
        )

    def is_account_admin_of(self, account: AccountModel) -> bool:
        return "account-admin" in self.roles and account.id == self.user.account_id


def can_read_account(caller: Principal, account: AccountModel) -> bool:
    return (
        caller.reads_all or account.id == caller.user.account_id or caller.is_consultant_of(account)
    )


def can_read_user(caller: Principal, user: UserModel, account: AccountModel) -> bool:
    """`account` is the user's account."""
    return user.id == caller.user.id or can_read_account(caller, account)


def can_read_user_audit_log(caller: Principal, user: UserModel, account: AccountModel) -> bool:
    return (
        caller.reads_all
        or user.id == caller.user.id
        or caller.is_account_admin_of(account)
        or caller.is_consultant_of(account)
    )


def can_read_account_audit_log(caller: Principal, account: AccountModel) -> bool:
    return (
        caller.reads_all or caller.is_account_admin_of(account) or caller.is_consultant_of(account)
    )


def audit_logs_readable(
    caller: Principal, accounts: Iterable[AccountModel]
) -> frozenset[UUID] | None:
    """The accounts whose audit logs (their own events and their users') the caller may read,
    of `accounts`; None: every audit log. Besides these, a caller reads their own user's."""
    if caller.reads_all:
        return None
    return frozenset(a.id for a in accounts if can_read_account_audit_log(caller, a))
