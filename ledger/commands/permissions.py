"""The write side's permission check, for a command given `as_user`: the facts it needs (the
acting user, the target user, the target account and its consultancy) taken from the
command's own unit of work, put to the rules of `ledger.access_policy`.

Every registered command names its kind here (`KINDS`); a command without one is for admins
only, so a command added later is never open by mistake."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final
from uuid import UUID

from ledger import access_policy as rules
from ledger.commands.base import Command
from ledger.commands.reviews import Certify, RevokeViaReview, campaign_of
from ledger.domain import Account, LedgerAggregate, User
from ledger.errors import PermissionDenied, ValidationError
from ledger.unit_of_work import UnitOfWork

KINDS: Final[dict[str, rules.Kind]] = {
    "define_role": "catalogue",
    "define_account_role": "catalogue",
    "define_sod_rule": "catalogue",
    "describe_role": "catalogue",
    "describe_account_role": "catalogue",
    "remove_sod_rule": "catalogue",
    "create_account": "account",
    "update_account": "account",
    "grant_account_role": "account",
    "revoke_account_role": "account",
    "set_consultancy": "account",
    "close_account": "account",
    "move_user": "account",
    "expire_grants": "housekeeping",
    "record_unrecognised_entry": "housekeeping",
    "record_failed_login": "housekeeping",
    "create_user": "user-create",
    "grant_role": "user-role",
    "revoke_role": "user-role",
    "extend_grant": "user-role",  # on an account's grant: "account" (see `kind_of`)
    "deactivate_user": "user-status",
    "reactivate_user": "user-status",
    "update_user": "user-profile",
    "set_password": "user-password",
    "erase_user": "user-erase",
    "record_login": "user-activity",
    "record_last_seen": "user-activity",
    "add_annotation": "annotation",
    "remove_annotation": "annotation",
    "start_review": "review-campaign",
    "close_review": "review-campaign",
    "certify": "review-decision",
    "revoke_via_review": "review-decision",
}
# the fields that name what a command acts on, in the order the journal lists them
_TARGET_FIELDS: Final = (
    "user",
    "user_or_account",
    "account",
    "account_id",
    "consultancy_account_id",
    "annotation",
    "item",
    "name",
    "role",
)


@dataclass(frozen=True)
class Denial:
    as_user: UUID
    command: str
    targets: tuple[str, ...]
    verdict: rules.Verdict

    def message(self) -> str:
        """One line: who, what, on what, and the rule; ids only (no email, no secret)."""
        on = f" on {', '.join(self.targets)}" if self.targets else ""
        return (
            f"permission denied: user {self.as_user} may not {self.command}{on}: "
            f"{self.verdict.why} (rule {self.verdict.rule})"
        )

    def error(self) -> PermissionDenied:
        return PermissionDenied(self.message())


def targets_of(command: Command[Any]) -> tuple[str, ...]:
    """What the command acts on, as the journal records it."""
    found: list[str] = []
    for name in _TARGET_FIELDS:
        value = getattr(command, name, None)
        if isinstance(value, UUID | str) and str(value) not in found:
            found.append(str(value))
    return tuple(found)


def check(command: Command[Any], uow: UnitOfWork) -> Denial | None:
    """None if `command.as_user` may run the command on the state the unit of work holds;
    else the denial. The aggregates read are noted in `uow.read_guards`, so that the save
    fails (and the command runs again) if any of them changed before it commits.
    ValidationError / NotFound for an acting user who is erased or does not exist."""
    as_user = command.as_user
    assert as_user is not None
    acting = _read(uow, User, as_user, "as_user")
    if acting.erased:
        raise ValidationError(f"invalid as_user {as_user}: the user is erased and acts on nothing")
    now = uow.meta.timestamp
    caller = rules.Caller(
        as_user, acting.account_id, frozenset(acting.held_now(now)), acting.active
    )
    kind = KINDS.get(command.command, "housekeeping")
    tenant: rules.Tenant | None = None
    target: rules.TargetUser | None = None
    roles: tuple[str, ...] = ()
    if kind not in rules.ADMIN_ONLY_KINDS and caller.active:
        user_id = getattr(command, "user", None) or getattr(command, "user_or_account", None)
        account_id = getattr(command, "account", None) or getattr(command, "account_id", None)
        if isinstance(user_id, UUID):
            holder = _read(uow, LedgerAggregate, user_id, "user")
            if isinstance(holder, Account):
                kind, account_id = "account", holder.id
            elif isinstance(holder, User):
                target = rules.TargetUser(
                    holder.id, _tenant(uow, holder.account_id), frozenset(holder.held_now(now))
                )
        if isinstance(account_id, UUID):
            tenant = _tenant(uow, account_id)
        role = getattr(command, "role", None)
        roles = (role,) if isinstance(role, str) else tuple(getattr(command, "roles", ()))
    reviewer: UUID | None = None
    if isinstance(command, Certify | RevokeViaReview) and caller.active:
        campaign = campaign_of(uow, command.item)
        uow.read_guards.setdefault(campaign.id, campaign.version)
        reviewer = UUID(campaign.reviewer)
    verdict = rules.may_write(
        caller,
        kind,
        tenant=tenant,
        target=target,
        roles=roles,
        reviewer=reviewer,
        exception=getattr(command, "exception_approved_by", None) is not None,
    )
    if verdict.allowed:
        return None
    return Denial(as_user, command.command, targets_of(command), verdict)


def _read(uow: UnitOfWork, cls: type[Any], aggregate_id: UUID, what: str) -> Any:
    aggregate = uow.load(cls, aggregate_id, what)
    uow.read_guards.setdefault(aggregate.id, aggregate.version)
    return aggregate


def _tenant(uow: UnitOfWork, account_id: UUID) -> rules.Tenant:
    account: Account = _read(uow, Account, account_id, "account")
    return rules.Tenant(account.id, account.consultancy_account_id)
