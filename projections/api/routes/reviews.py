"""`/api/v3_0/reviews`: access-review campaigns and their items, and `/users/{id}/reviews`: the
decisions about one user. Review evidence is audit material, read as the audit logs are:
admins and admin-readers read every campaign; account-admins and consultants read the items of
the accounts whose audit logs they may read (and counts over those items only); anyone else
reading no such account gets 403."""

from typing import Any
from uuid import UUID

from fastapi import APIRouter

import projections.api.policy as policy
import projections.api.schemas as schemas
from projections.api.dependencies import Read, user_or_404
from projections.api.errors import PROBLEMS, ApiError, forbidden
from projections.api.external_ids import AnyId, ExternalIds
from projections.api.policy import Principal
from projections.api.schemas import UtcDateTime
from projections.read_model import ReadModel
from projections.reviews import ReviewItemModel, ReviewModel

router = APIRouter()
Readable = frozenset[UUID] | None
"""The accounts whose review items the caller reads; None: every account."""


def _readable(me: policy.Principal, rm: ReadModel) -> Readable:
    readable = policy.audit_logs_readable(me, rm.list_accounts(include_closed=True))
    if readable is not None and not readable:
        raise forbidden("access reviews")
    return readable


@router.get("/api/v3_0/reviews", response_model=list[schemas.Review], responses=PROBLEMS)
def list_reviews(read: Read, at: UtcDateTime | None = None) -> Any:
    def answer(me: Principal, rm: ReadModel, ids: ExternalIds) -> Any:
        readable = _readable(me, rm)
        shown = []
        for campaign in rm.reviews(at):
            items = rm.review_items(campaign.name, at, account_ids=readable)
            if readable is None or items:
                shown.append(_review(rm, ids, me, readable, campaign, items))
        return shown

    return read.in_thread(answer)


@router.get(
    "/api/v3_0/reviews/{name:path}", response_model=schemas.ReviewWithItems, responses=PROBLEMS
)
def get_review(name: str, read: Read, at: UtcDateTime | None = None) -> schemas.ReviewWithItems:
    def answer(me: Principal, rm: ReadModel, ids: ExternalIds) -> schemas.ReviewWithItems:
        readable = _readable(me, rm)
        campaign = rm.review(name, at)
        if campaign is None:
            raise ApiError(404, f"review campaign {name!r} not found")
        items = rm.review_items(name, at, account_ids=readable)
        if readable is not None and not items:
            raise forbidden(f"review campaign {name!r}")
        summary = _review(rm, ids, me, readable, campaign, items)
        reviewer = _reviewer_shown(rm, me, readable, campaign.reviewer_id)
        return schemas.ReviewWithItems(
            **summary.model_dump(), item_list=[_item(ids, item, reviewer) for item in items]
        )

    return read.in_thread(answer)


@router.get(
    "/api/v3_0/users/{id}/reviews", response_model=list[schemas.ReviewItem], responses=PROBLEMS
)
def user_reviews(id: AnyId, read: Read, at: UtcDateTime | None = None) -> list[schemas.ReviewItem]:
    def answer(me: Principal, rm: ReadModel, ids: ExternalIds) -> list[schemas.ReviewItem]:
        user, account = user_or_404(rm, ids.ledger_id("user", id))
        if not policy.can_read_user_audit_log(me, user, account):
            raise forbidden(f"the access reviews of user {id}")
        readable = policy.audit_logs_readable(me, rm.list_accounts(include_closed=True))
        return [
            _item(ids, item, _reviewer_shown(rm, me, readable, item.reviewer_id))
            for item in rm.review_decisions(user.id, at)
        ]

    return read.in_thread(answer)


def _review(
    rm: ReadModel,
    ids: ExternalIds,
    me: policy.Principal,
    readable: Readable,
    campaign: ReviewModel,
    items: list[ReviewItemModel],
) -> schemas.Review:
    if readable is None:
        counts = {key: getattr(campaign, key) for key in _COUNTS}
    else:  # over the items the caller reads only
        decided = [item.decision for item in items]
        counts = {
            "items": len(items),
            "certified": decided.count("certified"),
            "revoked": decided.count("revoked"),
            "undecided": decided.count(None),
        }
    reviewer_shown = _reviewer_shown(rm, me, readable, campaign.reviewer_id)
    scope: list[str | int] = list(campaign.scope)
    if campaign.scope_kind == "accounts":
        scope = [
            _plain(ids.shown("account", UUID(account)))
            for account in campaign.scope
            if readable is None or UUID(account) in readable
        ]
    return schemas.Review(
        name=campaign.name,
        scope_kind=campaign.scope_kind,
        scope=scope,
        reviewer_id=ids.shown("user", campaign.reviewer_id) if reviewer_shown else None,
        due=campaign.due,
        started_at=campaign.started_at,
        status=campaign.status,
        closed_at=campaign.closed_at,
        overdue=campaign.overdue,
        **counts,
    )


def _plain(value: UUID | int) -> str | int:
    return str(value) if isinstance(value, UUID) else value


_COUNTS = ("items", "certified", "revoked", "undecided")


def _reviewer_shown(
    rm: ReadModel, me: policy.Principal, readable: Readable, reviewer_id: UUID | None
) -> bool:
    """Whether the caller may see who the reviewer is: a user they may read."""
    if reviewer_id is None or readable is None or reviewer_id == me.user.id:
        return reviewer_id is not None
    reviewer = rm.get_user(reviewer_id)
    return reviewer is not None and reviewer.account_id in readable


def _item(ids: ExternalIds, item: ReviewItemModel, reviewer_shown: bool) -> schemas.ReviewItem:
    return schemas.ReviewItem(
        id=item.id,
        campaign=item.campaign,
        user_id=ids.shown("user", item.user_id),
        role=item.role,
        account_id=ids.shown("account", item.account_id),
        decision=item.decision,
        decided_at=item.decided_at,
        reviewer_id=(
            ids.shown("user", item.reviewer_id)
            if reviewer_shown and item.reviewer_id is not None
            else None
        ),
        reason=item.reason,
        role_revoked=item.role_revoked,
    )
