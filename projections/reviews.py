"""The questions about access-review campaigns: the campaigns, one campaign's state and its items
with their decisions, now or as they stood at any instant (a decision recorded after `at` is
not shown, nor a close, nor a campaign started after it)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

from sqlalchemy import Engine, Row, Select, Uuid, and_, bindparam, select
from sqlalchemy.sql.elements import ColumnElement

from ledger.validation import Moment, optional
from projections import held
from projections import tables as t
from projections.models import _Model
from projections.prepared import PreparedReader

Status = Literal["open", "overdue", "closed"]


class ReviewItemModel(_Model):
    id: str
    """`CAMPAIGN#N`: what `certify` and `revoke_via_review` take."""
    campaign: str
    user_id: UUID
    role: str
    account_id: UUID
    decision: Literal["certified", "revoked"] | None
    decided_at: datetime | None
    reviewer_id: UUID | None
    decided_by: str | None
    """The actor who recorded the decision (the reviewer is `reviewer_id`)."""
    reason: str | None
    role_revoked: bool | None
    """For a revoked item: whether the role's revocation was recorded with the decision
    (False: the grant had ended already, or its user was erased)."""


class ReviewModel(_Model):
    name: str
    scope_kind: Literal["accounts", "roles"]
    scope: list[str]
    reviewer_id: UUID
    due: datetime
    started_at: datetime
    started_by: str
    status: Status
    """At the instant asked about: closed, or open and past its due time (overdue), or open."""
    closed_at: datetime | None
    closed_by: str | None
    items: int
    certified: int
    revoked: int
    undecided: int
    overdue: bool
    """Closed after its due time (as the close recorded), or still open past it."""


def _moment(value: Any) -> datetime | None:
    return optional(Moment, value, "at")  # type: ignore[no-any-return]


_ROLE_ENDS_NOW = select(t.role_grants.c.role, t.role_grants.c.ends_at).where(
    held.grants_held(bindparam("u", type_=Uuid()), None), t.role_grants.c.ends_at.is_not(None)
)


class ReviewQueries:
    engine: Engine
    reader: PreparedReader

    def reviews(self, at: datetime | None = None) -> list[ReviewModel]:
        """Every campaign started by `at` (default: now), by start, as it stood then."""
        return self._campaigns(None, _moment(at))

    def review(self, name: str, at: datetime | None = None) -> ReviewModel | None:
        """The campaign as it stood at `at` (default: now); None if not started by then."""
        found = self._campaigns(str(name).strip(), _moment(at))
        return found[0] if found else None

    def review_items(
        self,
        name: str,
        at: datetime | None = None,
        *,
        account_ids: Iterable[UUID] | None = None,
    ) -> list[ReviewItemModel]:
        """The campaign's items in order, each with its decision as it stood at `at`;
        `account_ids`: only the items of users of these accounts. Empty if the campaign had
        not started by then."""
        moment = _moment(at)
        campaign = t.review_campaigns.c
        started = select(campaign.name).where(
            campaign.name == str(name).strip(), *_started_by(moment)
        )
        items = t.review_items.c
        conditions: list[ColumnElement[bool]] = [items.campaign.in_(started)]
        if account_ids is not None:
            conditions.append(items.account_id.in_(list(account_ids)))
        return self._items(and_(*conditions), moment, (items.number,))

    def review_decisions(self, user_id: UUID, at: datetime | None = None) -> list[ReviewItemModel]:
        """The items about a user, in every campaign started by `at`, with their decisions."""
        moment = _moment(at)
        campaign = t.review_campaigns.c
        items = t.review_items.c
        started = select(campaign.name).where(*_started_by(moment))
        return self._items(
            and_(items.user_id == user_id, items.campaign.in_(started)),
            moment,
            (items.campaign, items.number),
        )

    def role_ends(self, user_id: UUID, at: datetime | None = None) -> dict[str, datetime]:
        """The end fixed in advance of each role the user holds (now, or at `at`) that has one."""
        grants = t.role_grants.c
        moment = _moment(at)
        if moment is None:  # the read API's, on every request for a user: prepared
            return {role: ends for role, ends in self.reader.all(_ROLE_ENDS_NOW, {"u": user_id})}
        return self._ends(
            select(grants.role, grants.ends_at).where(
                held.grants_held(user_id, moment), grants.ends_at.is_not(None)
            )
        )

    def account_role_ends(
        self, account_id: UUID, at: datetime | None = None
    ) -> dict[str, datetime]:
        """The end fixed in advance of each account role the account holds that has one."""
        grants = t.account_role_grants.c
        return self._ends(
            select(grants.role, grants.ends_at).where(
                grants.account_id == account_id,
                held.ACCOUNT_ROLE_GRANTS.covers(_moment(at)),
                grants.ends_at.is_not(None),
            )
        )

    def _ends(self, query: Select[Any]) -> dict[str, datetime]:
        with self.engine.connect() as conn:
            return {role: ends_at for role, ends_at in conn.execute(query).all()}

    def _items(
        self, condition: ColumnElement[bool], moment: datetime | None, order: tuple[Any, ...]
    ) -> list[ReviewItemModel]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.review_items).where(condition).order_by(*order)).all()
        return [_item(row, moment) for row in rows]

    def _campaigns(self, name: str | None, moment: datetime | None) -> list[ReviewModel]:
        campaign, items = t.review_campaigns.c, t.review_items.c
        conditions = _started_by(moment)
        if name is not None:
            conditions.append(campaign.name == name)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.review_campaigns)
                .where(*conditions)
                .order_by(campaign.started_at, campaign.name)
            ).all()
            names = [row.name for row in rows]
            decided = conn.execute(
                select(items.campaign, items.decision, items.decided_at).where(
                    items.campaign.in_(names)
                )
            ).all()
        counts: dict[str, dict[str | None, int]] = {}
        for item in decided:
            decision = item.decision if _seen(item.decided_at, moment) else None
            tally = counts.setdefault(item.campaign, {})
            tally[decision] = tally.get(decision, 0) + 1
        return [_campaign(row, counts.get(row.name, {}), moment) for row in rows]


def _started_by(moment: datetime | None) -> list[ColumnElement[bool]]:
    if moment is None:
        return []
    return [t.review_campaigns.c.started_at <= moment]


def _seen(recorded_at: datetime | None, moment: datetime | None) -> bool:
    """Whether something recorded at `recorded_at` had happened by `moment` (None: now)."""
    return recorded_at is not None and (moment is None or recorded_at <= moment)


def _item(row: Row[Any], moment: datetime | None) -> ReviewItemModel:
    decided = _seen(row.decided_at, moment)
    return ReviewItemModel(
        id=row.id,
        campaign=row.campaign,
        user_id=row.user_id,
        role=row.role,
        account_id=row.account_id,
        decision=row.decision if decided else None,
        decided_at=row.decided_at if decided else None,
        reviewer_id=row.reviewer_id if decided else None,
        decided_by=row.decided_by if decided else None,
        reason=row.decision_reason if decided else None,
        role_revoked=row.role_revoked if decided else None,
    )


def _campaign(row: Row[Any], tally: dict[str | None, int], moment: datetime | None) -> ReviewModel:
    closed = _seen(row.closed_at, moment)
    when = moment or datetime.now(UTC)
    if closed:
        status: Status = "closed"
        overdue = bool(row.overdue)
    else:
        overdue = when > row.due
        status = "overdue" if overdue else "open"
    return ReviewModel(
        name=row.name,
        scope_kind=row.scope_kind,
        scope=list(row.scope),
        reviewer_id=row.reviewer_id,
        due=row.due,
        started_at=row.started_at,
        started_by=row.started_by,
        status=status,
        closed_at=row.closed_at if closed else None,
        closed_by=row.closed_by if closed else None,
        items=sum(tally.values()),
        certified=tally.get("certified", 0),
        revoked=tally.get("revoked", 0),
        undecided=tally.get(None, 0),
        overdue=overdue,
    )
