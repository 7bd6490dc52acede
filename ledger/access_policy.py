"""Who may do what, as FlexMeasures' policy: the one set of access rules, for reads (the read
API, `projections/api/policy.py`) and for writes (commands given `as_user`).

Pure functions over plain facts (the caller's id, account, effective roles and activity; the
target's account and its consultancy; the target user's roles): no database, no clock, so both
sides ask the same questions of the state they hold.

Reads: `admin` and `admin-reader` read everything; a user reads their own account and its
users; a `consultant` reads the client accounts whose consultancy is their own account, and
their users. A user's audit log: the user, the account-admins of their account and its
consultants; an account's audit log: its account-admins and consultants (and the admins).

Writes (`may_write`, one rule per kind of command; see README "Permission-checked writes"):
an inactive caller acts on nothing; nobody changes their own roles or active flag, nor erases
themselves; `admin` may do the rest; only `admin` defines roles and separation-of-duties rules,
manages accounts (create, update, close, consultancy, account roles) and does the ledger's
housekeeping; an `account-admin` manages the users of their own account and their roles
(not `admin`, `admin-reader` or `consultant`), and a `consultant` does so for the accounts
their account is the consultancy of; neither acts on a user who holds `admin`,
`admin-reader` or `consultant`; users change their own profile and password and record their
own activity; members and consultants of an account annotate it; only an admin grants with an
approved separation-of-duties exception, starts or closes an access review; only a campaign's
reviewer, acting as themself, decides its items.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal
from uuid import UUID

ADMIN: Final = "admin"
ADMIN_READER: Final = "admin-reader"
ACCOUNT_ADMIN: Final = "account-admin"
CONSULTANT: Final = "consultant"

READ_ALL: Final = frozenset({ADMIN, ADMIN_READER})
ADMIN_GRANTS_ONLY: Final = frozenset({ADMIN, ADMIN_READER, CONSULTANT})
"""User roles that only an admin grants or revokes."""
ABOVE_ACCOUNT_MANAGERS: Final = frozenset({ADMIN, ADMIN_READER, CONSULTANT})
"""Holders of these are out of reach of account-admins and consultants: each reads beyond
one account, so whoever could reset their password or email could read beyond it too."""

Kind = Literal[
    "catalogue",
    "account",
    "housekeeping",
    "user-create",
    "user-role",
    "user-status",
    "user-profile",
    "user-password",
    "user-erase",
    "user-activity",
    "annotation",
    "review-campaign",
    "review-decision",
]
ADMIN_ONLY_KINDS: Final = frozenset(
    {"catalogue", "account", "housekeeping", "user-erase", "review-campaign"}
)
SELF_FORBIDDEN_KINDS: Final = frozenset({"user-role", "user-status", "user-erase"})


@dataclass(frozen=True)
class Caller:
    """Who acts: their user id, account, roles held now (grants past their end left out)
    and whether they are active. An inactive caller's roles count for nothing."""

    user_id: UUID
    account_id: UUID
    roles: frozenset[str]
    active: bool = True

    @property
    def effective_roles(self) -> frozenset[str]:
        return self.roles if self.active else frozenset()


@dataclass(frozen=True)
class Tenant:
    """An account, as access decisions see it: its id and its consultancy's."""

    account_id: UUID
    consultancy_account_id: UUID | None


@dataclass(frozen=True)
class TargetUser:
    """A user acted on: their id, account and the roles they hold now."""

    user_id: UUID
    tenant: Tenant
    roles: frozenset[str]


@dataclass(frozen=True)
class Verdict:
    """`rule`: a short name of the rule that decided; `why`: that rule in a sentence."""

    allowed: bool
    rule: str
    why: str


# -- reads --------------------------------------------------------------------------------------


def reads_all(caller: Caller) -> bool:
    return bool(caller.effective_roles & READ_ALL)


def is_consultant_of(caller: Caller, tenant: Tenant) -> bool:
    return CONSULTANT in caller.effective_roles and (
        tenant.consultancy_account_id is not None
        and tenant.consultancy_account_id == caller.account_id
    )


def is_account_admin_of(caller: Caller, tenant: Tenant) -> bool:
    return ACCOUNT_ADMIN in caller.effective_roles and tenant.account_id == caller.account_id


def can_read_account(caller: Caller, tenant: Tenant) -> bool:
    return (
        reads_all(caller)
        or tenant.account_id == caller.account_id
        or is_consultant_of(caller, tenant)
    )


def can_read_user(caller: Caller, user_id: UUID, tenant: Tenant) -> bool:
    """`tenant` is the user's account."""
    return user_id == caller.user_id or can_read_account(caller, tenant)


def can_read_user_audit_log(caller: Caller, user_id: UUID, tenant: Tenant) -> bool:
    return (
        reads_all(caller)
        or user_id == caller.user_id
        or is_account_admin_of(caller, tenant)
        or is_consultant_of(caller, tenant)
    )


def can_read_account_audit_log(caller: Caller, tenant: Tenant) -> bool:
    return (
        reads_all(caller) or is_account_admin_of(caller, tenant) or is_consultant_of(caller, tenant)
    )


def audit_logs_readable(caller: Caller, tenants: Iterable[Tenant]) -> frozenset[UUID] | None:
    """The accounts whose audit logs the caller may read, of `tenants`; None: every one."""
    if reads_all(caller):
        return None
    return frozenset(t.account_id for t in tenants if can_read_account_audit_log(caller, t))


# -- writes -------------------------------------------------------------------------------------

RULES: Final = {
    "inactive-caller": "an inactive user acts on nothing",
    "self": "nobody changes their own roles or active flag, nor erases themselves",
    "admin": "an admin may",
    "admin-only": "only an admin may",
    "self-only": "only the user themself (or an admin) may",
    "own-profile": "a user may change their own profile and password",
    "own-activity": "a user records their own logins and activity",
    "account-manager": "an account-admin of the account, or a consultant of its consultancy, may",
    "not-account-manager": "only an admin, an account-admin of the user's account or a "
    "consultant of its consultancy may",
    "admin-granted-role": "only an admin grants or revokes admin, admin-reader and consultant",
    "privileged-target": "only an admin acts on a user who holds admin, admin-reader or consultant",
    "account-member": "a member of the account, or a consultant of its consultancy, may",
    "not-account-member": "only an admin, a member of the account or a consultant of its "
    "consultancy may",
    "admin-exception": "only an admin grants a role as an approved separation-of-duties exception",
    "own-review": "the campaign's reviewer decides its items",
    "not-reviewer": "only the campaign's reviewer decides its items (an admin does not stand in)",
}


def _verdict(allowed: bool, rule: str) -> Verdict:
    return Verdict(allowed, rule, RULES[rule])


def may_write(
    caller: Caller,
    kind: Kind,
    *,
    tenant: Tenant | None = None,
    target: TargetUser | None = None,
    roles: Iterable[str] = (),
    reviewer: UUID | None = None,
    exception: bool = False,
) -> Verdict:
    """Whether `caller` may run a command of `kind`: on the account `tenant` (for a user
    command, the target user's account), on the user `target`, granting or revoking `roles`;
    a review decision, in the name of `reviewer`; `exception`: a grant that records an
    approved separation-of-duties exception."""
    if not caller.active:
        return _verdict(False, "inactive-caller")
    if kind == "review-decision":
        own = reviewer == caller.user_id
        return _verdict(own, "own-review" if own else "not-reviewer")
    is_self = target is not None and target.user_id == caller.user_id
    if is_self and kind in SELF_FORBIDDEN_KINDS:
        return _verdict(False, "self")
    if ADMIN in caller.effective_roles:
        return _verdict(True, "admin")
    if exception:
        return _verdict(False, "admin-exception")
    if kind in ADMIN_ONLY_KINDS:
        return _verdict(False, "admin-only")
    if kind == "user-activity":
        return _verdict(is_self, "own-activity" if is_self else "self-only")
    if kind in ("user-profile", "user-password") and is_self:
        return _verdict(True, "own-profile")
    if tenant is None and target is not None:
        tenant = target.tenant
    if tenant is None:
        return _verdict(False, "admin-only")
    if kind == "annotation":
        member = tenant.account_id == caller.account_id or is_consultant_of(caller, tenant)
        return _verdict(member, "account-member" if member else "not-account-member")
    if not (is_account_admin_of(caller, tenant) or is_consultant_of(caller, tenant)):
        return _verdict(False, "not-account-manager")
    if ADMIN_GRANTS_ONLY & set(roles):
        return _verdict(False, "admin-granted-role")
    if target is not None and target.roles & ABOVE_ACCOUNT_MANAGERS:
        return _verdict(False, "privileged-target")
    return _verdict(True, "account-manager")
