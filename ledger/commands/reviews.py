"""Access-review commands: start a campaign (its items: the in-scope grants held then), certify or
revoke an item (a revocation records the role's revocation in the same transaction, its reason
naming the campaign), close a campaign (its outcome).

Decisions: only the campaign's reviewer decides its items, never one about their own access,
each item once, and only while the campaign is open (each refusal a Conflict). A revoked item
whose grant has ended since the start (revoked, expired) or whose user was erased records the
decision alone; a certified one is refused (Conflict), since it would certify access not held.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, ClassVar, Final
from uuid import UUID

from ledger.commands.base import (
    Decision,
    References,
    Services,
    arg,
    plain,
    user_reference,
    valid_as,
)
from ledger.commands.grants import grant_ends_followed
from ledger.commands.registry import handles
from ledger.domain import Account, Role, User
from ledger.domain.reviews import (
    ReviewCampaign,
    ScopeKind,
    campaign_id,
    revocation_reason,
    split_item_id,
)
from ledger.errors import Conflict, InactiveUser, NotFound, ValidationError
from ledger.unit_of_work import UnitOfWork
from ledger.validation import Moment, RoleName, role_name, shown, valid

CampaignName = RoleName
"""A campaign's name follows a role name's rules (1-80 characters, trimmed)."""
MAX_SCOPE: Final = 1000
Scope = tuple[ScopeKind, tuple[str, ...]]


def _scope(value: Any, refs: References) -> Scope:
    """`{"accounts": [account, ...]}` (by id or name) or `{"roles": [role, ...]}` (user roles)."""
    if not isinstance(value, dict) or len(value) != 1:
        raise ValidationError(
            f"invalid scope {shown(value)}: give {{'accounts': [...]}} or {{'roles': [...]}}"
        )
    ((kind, given),) = value.items()
    if kind not in ("accounts", "roles"):
        raise ValidationError(f"invalid scope {shown(kind)}: must be 'accounts' or 'roles'")
    if isinstance(given, str | bytes) or not isinstance(given, list | tuple | set | frozenset):
        raise ValidationError(f"invalid scope {shown(given)}: give a list of {kind}")
    if not given or len(given) > MAX_SCOPE:
        raise ValidationError(
            f"invalid scope {shown(kind)}: give 1 to {MAX_SCOPE} {kind}, not {len(given)}"
        )
    if kind == "roles":
        names = {role_name(item) for item in given}
    else:
        names = {str(refs.resolve_account(item, "account in scope")) for item in given}
    return kind, tuple(sorted(names))


def _item(value: Any) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"invalid item {shown(value)}: give an item id (CAMPAIGN#N)")
    item = value.strip()
    name, _ = split_item_id(item)
    valid(CampaignName, name, "campaign name")
    return item


@dataclass(frozen=True, kw_only=True)
class StartReview(Decision[UUID]):
    """Start campaign `name`: `reviewer` (a user) is to decide, by `due`, each grant of a user
    role held (effectively: by an active user, not ended) now by a user in the `scope`."""

    command: ClassVar[str] = "start_review"

    name: str = arg(valid_as(CampaignName, "campaign name"))
    scope: Scope = arg(_scope)
    reviewer: UUID = arg(user_reference("reviewer"))
    due: datetime = arg(valid_as(Moment, "due"))


@handles(StartReview)
def start_review(command: StartReview, uow: UnitOfWork, services: Services) -> UUID:
    if uow.exists(ReviewCampaign, campaign_id(command.name)):
        raise Conflict(f"review campaign {shown(command.name)} exists already")
    _check_reviewer(uow, command.reviewer)
    kind, names = command.scope
    if kind == "roles":
        for role in names:
            services.check_role(uow, Role, role)
        wanted = set(names)
        user_ids = sorted(set(services.user_ids()) | _claimed_users(uow), key=str)
    else:
        wanted = None
        user_ids = []
        for account_id in names:
            account = uow.load(Account, UUID(account_id), "account in scope")
            if account.closed:
                raise Conflict(f"account {account_id} in scope is closed")
            user_ids.extend(sorted(account.members, key=str))
    now = uow.meta.timestamp
    grants = []
    for user_id in user_ids:
        user = uow.load(User, user_id, "user")
        if user.erased or not user.active:
            continue  # an inactive user holds no role (FlexMeasures), so there is none to review
        for role in sorted(user.held_now(now)):
            if wanted is None or role in wanted:
                grants.append((user_id, role, user.account_id))
    campaign = ReviewCampaign.start(
        command.name, kind, list(names), command.reviewer, command.due, grants, uow.meta
    )
    uow.add(campaign)
    return campaign.id


def _claimed_users(uow: UnitOfWork) -> set[UUID]:
    """Users whose email this batch claimed: created in it, not yet in the claims table."""
    return {
        owner for (kind, _), owner in uow.claims.items() if kind == "email" and owner is not None
    }


def _check_reviewer(uow: UnitOfWork, reviewer: UUID) -> None:
    user = uow.load(User, reviewer, "reviewer")
    if user.erased:
        raise Conflict(f"reviewer user {reviewer} is erased")
    if not user.active:
        raise InactiveUser(f"reviewer {user.describe()} is inactive")


def _campaign(uow: UnitOfWork, name: str) -> ReviewCampaign:
    try:
        return uow.load(ReviewCampaign, campaign_id(name), "review campaign")
    except NotFound:
        raise NotFound(f"review campaign {shown(name)} not found") from None


def campaign_of(uow: UnitOfWork, item: str) -> ReviewCampaign:
    name, _ = split_item_id(item)
    return _campaign(uow, name)


@dataclass(frozen=True, kw_only=True)
class Certify(Decision[bool]):
    """The reviewer certifies that the item's user keeps the role; `reason` is required."""

    command: ClassVar[str] = "certify"

    item: str = arg(plain(_item))
    reviewer: UUID = arg(user_reference("reviewer"))

    def check(self) -> None:
        _check_reason(self.reason)


@handles(Certify)
def certify(command: Certify, uow: UnitOfWork, services: Services) -> bool:
    campaign = campaign_of(uow, command.item)
    user_id, role = campaign.check_decidable(command.item, command.reviewer)
    _check_reviewer(uow, command.reviewer)
    user = uow.load(User, UUID(user_id), "user")
    if not user.active:
        raise Conflict(
            f"item {shown(command.item)}: {user.describe()} is inactive and holds no role, so "
            "it cannot be certified; revoke_via_review records the decision alone"
        )
    if not user.holds(role, uow.meta.timestamp):
        raise Conflict(
            f"item {shown(command.item)}: {user.describe()} no longer holds {role!r}, so it "
            "cannot be certified; revoke_via_review records the decision alone"
        )
    campaign.certify(command.item, command.reviewer, uow.meta)
    return True


@dataclass(frozen=True, kw_only=True)
class RevokeViaReview(Decision[bool]):
    """The reviewer decides the item's user loses the role: the decision and the role's
    revocation are recorded together; `reason` is required."""

    command: ClassVar[str] = "revoke_via_review"

    item: str = arg(plain(_item))
    reviewer: UUID = arg(user_reference("reviewer"))

    def check(self) -> None:
        _check_reason(self.reason)


@handles(RevokeViaReview)
def revoke_via_review(command: RevokeViaReview, uow: UnitOfWork, services: Services) -> bool:
    campaign = campaign_of(uow, command.item)
    user_id, role = campaign.check_decidable(command.item, command.reviewer)
    _check_reviewer(uow, command.reviewer)
    user = uow.load(User, UUID(user_id), "user")
    revoked = False
    if not user.erased:  # an erased user accepts no commands, and holds no effective role
        revoking = replace(
            uow.meta, reason=revocation_reason(campaign.name, command.item, command.reason)
        )
        with grant_ends_followed(uow, user):
            revoked = user.revoke_role(role, revoking)
    campaign.revoke(command.item, command.reviewer, revoked, uow.meta)
    return True


def _check_reason(reason: str | None) -> None:
    if reason is None:
        raise ValidationError("invalid reason None: a review decision needs a reason")


@dataclass(frozen=True, kw_only=True)
class CloseReview(Decision[bool]):
    """Close campaign `name`, recording its outcome (items certified, revoked and undecided,
    and whether it closed after its due time); False if it is closed already."""

    command: ClassVar[str] = "close_review"

    name: str = arg(valid_as(CampaignName, "campaign name"))


@handles(CloseReview)
def close_review(command: CloseReview, uow: UnitOfWork, services: Services) -> bool:
    return _campaign(uow, command.name).close(uow.meta)
