"""Separation-of-duties commands: define and remove a rule; and the check every grant makes
(`check_separation`): a grant that would give one user (or account) both roles of a rule is a
Conflict naming the rule, unless an exception is approved (`exception_approved_by` and a
reason), which is then recorded with the grant. A ledger that mirrors another system of record
(`Services.separation_enforced` off) records such grants as the facts they are: the
`sod-violations` report shows them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar
from uuid import UUID

from ledger import references
from ledger.commands.base import Decision, References, Services, arg, plain, valid_as
from ledger.commands.registry import handles
from ledger.domain import AccountRole, Role
from ledger.domain.grants import RoleHolder
from ledger.domain.separation import POLICY_ID, Scope, SeparationPolicy, describe_rule
from ledger.errors import Conflict, NotFound, ValidationError
from ledger.unit_of_work import UnitOfWork
from ledger.validation import Actor, RoleName, role_name, shown, valid

SodRuleName = RoleName
"""A rule's name follows a role name's rules (1-80 characters, trimmed)."""


def _rule_roles(value: Any) -> tuple[str, str]:
    if isinstance(value, str) or not hasattr(value, "__iter__"):
        raise ValidationError(f"invalid roles {shown(value)}: give a list of two role names")
    names = [role_name(item) for item in value]
    if len(names) != 2 or names[0] == names[1]:
        raise ValidationError(f"invalid roles {shown(names)}: give two different role names")
    return names[0], names[1]


def _scope(value: Any) -> Scope:
    if value not in ("user", "account"):
        raise ValidationError(f"invalid scope {shown(value)}: must be 'user' or 'account'")
    return value  # type: ignore[no-any-return]


@dataclass(frozen=True, kw_only=True)
class DefineSodRule(Decision[bool]):
    """No one user (scope "user": user roles) or account (scope "account": account roles) may
    hold both `roles`. Defining the same rule again changes nothing."""

    command: ClassVar[str] = "define_sod_rule"

    name: str = arg(valid_as(SodRuleName, "rule name"))
    roles: tuple[str, str] = arg(plain(_rule_roles))
    scope: Scope = arg(plain(_scope), "user")


@handles(DefineSodRule)
def define_sod_rule(command: DefineSodRule, uow: UnitOfWork, services: Services) -> bool:
    catalogue = Role if command.scope == "user" else AccountRole
    for role in command.roles:
        services.check_role(uow, catalogue, role)
    policy = _policy(uow)
    if policy is None:
        policy = SeparationPolicy.start(uow.meta)
        uow.add(policy)
    return policy.define(command.name, command.scope, command.roles, uow.meta)


@dataclass(frozen=True, kw_only=True)
class RemoveSodRule(Decision[bool]):
    command: ClassVar[str] = "remove_sod_rule"

    name: str = arg(valid_as(SodRuleName, "rule name"))


@handles(RemoveSodRule)
def remove_sod_rule(command: RemoveSodRule, uow: UnitOfWork, services: Services) -> bool:
    policy = _policy(uow)
    if policy is None:
        raise NotFound(f"separation-of-duties rule {shown(command.name)} is not defined")
    return policy.remove(command.name, uow.meta)


def _policy(uow: UnitOfWork) -> SeparationPolicy | None:
    try:
        return uow.load(SeparationPolicy, POLICY_ID, "separation-of-duties policy")
    except NotFound:
        return None


def approver(value: Any, refs: References) -> str | None:
    """Who approved an exception: a user (by id or email, recorded as the user id) or an
    actor (as `actor` is given)."""
    if value is None:
        return None
    if references.is_email(value) or isinstance(value, UUID):
        return str(refs.resolve_user(value, "exception_approved_by"))
    return str(valid(Actor, value, "exception_approved_by"))


def check_approval(
    approved_by: str | None,
    actor: str,
    reason: str | None,
    holder: UUID,
    as_user: UUID | None = None,
) -> None:
    """An approval needs a reason, and comes from someone other than the actor, the acting
    user (`as_user`) and the holder."""
    if approved_by is None:
        return
    if reason is None:
        raise ValidationError(
            f"invalid exception_approved_by {shown(approved_by)}: an approved exception needs "
            "a reason"
        )
    if approved_by in (actor, str(holder)) or (as_user and approved_by == str(as_user)):
        raise ValidationError(
            f"invalid exception_approved_by {shown(approved_by)}: an exception is approved by "
            "someone other than the one who grants or receives the role"
        )


def check_separation(
    uow: UnitOfWork,
    holder: RoleHolder,
    scope: Scope,
    role: str,
    approved_by: str | None,
    enforced: bool = True,
) -> list[str]:
    """The rules granting `role` to `holder` now would break: none, or all approved (else
    Conflict naming the first; when not `enforced`, none: the grant is a mirrored fact)."""
    if not enforced:
        return []
    now = uow.meta.timestamp
    if holder.holds(role, now):
        return []  # granted already: the grant changes nothing
    policy = _policy(uow)
    if policy is None:
        return []
    broken = policy.broken_by(scope, role, holder.held_now(now))
    if broken and approved_by is None:
        raise Conflict(_refusal(policy, broken[0], role, holder.describe()))
    return broken


def check_roles_together(
    uow: UnitOfWork, scope: Scope, roles: Iterable[str], who: str, enforced: bool = True
) -> None:
    """Roles given together to a new user or account (`who`) break no rule (else Conflict;
    when not `enforced`, never): checked before the command changes anything, as every check
    must be."""
    policy = _policy(uow) if enforced else None
    if policy is None:
        return
    held: set[str] = set()
    for role in roles:
        broken = policy.broken_by(scope, role, held)
        if broken:
            raise Conflict(_refusal(policy, broken[0], role, who))
        held.add(role)


def _refusal(policy: SeparationPolicy, rule: str, role: str, who: str) -> str:
    return (
        f"granting {role!r} to {who} breaks separation-of-duties {describe_rule(policy, rule)}; "
        "give exception_approved_by and a reason to grant it as an approved exception"
    )
