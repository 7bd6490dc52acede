"""Access-review campaigns: a named reviewer signs off, item by item, the (user, role) grants
that were held when the campaign started; the sign-off is the evidence an auditor asks for.

A campaign is one aggregate whose id is derived from its name (so a name is unique by the event
store itself). Its items are fixed when it starts; each is decided once (certified or revoked)
while the campaign is open, and closing it records the outcome. Item ids are `NAME#N`, so an
item names its campaign.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal
from uuid import UUID, uuid5

from ledger.domain.base import LedgerAggregate, Meta
from ledger.errors import Conflict, NotFound, ValidationError
from ledger.validation import shown

ScopeKind = Literal["accounts", "roles"]
SCOPE_KINDS: Final = ("accounts", "roles")
CERTIFIED: Final = "certified"
REVOKED: Final = "revoked"
_NAMESPACE: Final = UUID("6f0c2b7e-8a4c-4f53-9a55-2f1f0b1e7d10")
ITEM_SEPARATOR: Final = "#"


def campaign_id(name: str) -> UUID:
    return uuid5(_NAMESPACE, f"review-campaign:{name}")


def item_id(name: str, number: int) -> str:
    return f"{name}{ITEM_SEPARATOR}{number}"


def split_item_id(item: str) -> tuple[str, int]:
    """(campaign name, item number) of an item id `NAME#N`; ValidationError if it is not one.
    The number follows the last `#`, so a campaign name may hold one too."""
    name, separator, number = item.rpartition(ITEM_SEPARATOR)
    if not separator or not name or not number.isascii() or not number.isdigit():
        raise ValidationError(
            f"invalid item {shown(item)}: an item id is CAMPAIGN#N, as `ledger review items` "
            "lists them"
        )
    if len(number) > 9 or int(number) < 1:
        raise ValidationError(f"invalid item {shown(item)}: no campaign has an item {number}")
    return name, int(number)


class ReviewCampaign(LedgerAggregate):
    def __init__(self) -> None:
        self.name = ""
        self.reviewer = ""  # the reviewer's user id, as text
        self.due: datetime | None = None
        self.items: dict[str, tuple[str, str]] = {}  # item id -> (user id, role)
        self.decisions: dict[str, str] = {}  # item id -> certified | revoked
        self.closed = False

    class ReviewStarted(LedgerAggregate.Created):
        """`items`: each in-scope grant held at the start, as {id, user, role, account}."""

        name: str
        scope_kind: str
        scope: list[str]
        reviewer: str
        due: datetime
        items: list[dict[str, str]]

        def apply(self, campaign: ReviewCampaign) -> None:  # type: ignore[override]
            campaign.name = self.name
            campaign.reviewer = self.reviewer
            campaign.due = self.due
            campaign.items = {item["id"]: (item["user"], item["role"]) for item in self.items}
            campaign.decisions = {}
            campaign.closed = False

    class ReviewItemCertified(LedgerAggregate.Event):
        item: str
        reviewer: str

        def apply(self, campaign: ReviewCampaign) -> None:  # type: ignore[override]
            campaign.decisions[self.item] = CERTIFIED

    class ReviewItemRevoked(LedgerAggregate.Event):
        """`role_revoked`: whether the revocation was recorded with it (False: the grant had
        ended already, or its user was erased)."""

        item: str
        reviewer: str
        role_revoked: bool

        def apply(self, campaign: ReviewCampaign) -> None:  # type: ignore[override]
            campaign.decisions[self.item] = REVOKED

    class ReviewClosed(LedgerAggregate.Event):
        name: str
        certified: int
        revoked: int
        undecided: int
        overdue: bool

        def apply(self, campaign: ReviewCampaign) -> None:  # type: ignore[override]
            campaign.closed = True

    @classmethod
    def start(
        cls,
        name: str,
        scope_kind: ScopeKind,
        scope: list[str],
        reviewer: UUID,
        due: datetime,
        grants: list[tuple[UUID, str, UUID]],
        meta: Meta,
    ) -> ReviewCampaign:
        """`grants`: (user, role, account) of each item, numbered in the order given."""
        if due <= meta.timestamp:
            raise ValidationError(
                f"invalid due {shown(due)}: it is not after the time of the command "
                f"({meta.timestamp.isoformat()}); a campaign is due in the future"
            )
        items = [
            {"id": item_id(name, number), "user": str(user), "role": role, "account": str(account)}
            for number, (user, role, account) in enumerate(grants, start=1)
        ]
        campaign: ReviewCampaign = cls._create(
            cls.ReviewStarted,
            id=campaign_id(name),
            name=name,
            scope_kind=scope_kind,
            scope=scope,
            reviewer=str(reviewer),
            due=due,
            items=items,
            **meta.fields(),
        )
        return campaign

    def describe(self) -> str:
        return f"review campaign {shown(self.name)}"

    def item(self, item: str) -> tuple[str, str]:
        """(user id, role) of an item of this campaign; NotFound if it has no such item."""
        found = self.items.get(item)
        if found is None:
            raise NotFound(f"item {shown(item)} not found: {self.describe()} has {len(self.items)}")
        return found

    def check_decidable(self, item: str, reviewer: UUID) -> tuple[str, str]:
        """(user id, role) of an item `reviewer` may decide now; else the reason why not."""
        user, role = self.item(item)
        if self.closed:
            raise Conflict(
                f"{self.describe()} is closed: item {shown(item)} can no longer be decided"
            )
        if str(reviewer) != self.reviewer:
            raise Conflict(
                f"item {shown(item)} is for the campaign's reviewer to decide, not user {reviewer}"
            )
        if user == str(reviewer):
            raise Conflict(
                f"reviewer user {reviewer} cannot decide item {shown(item)}: it is about their "
                "own access"
            )
        decided = self.decisions.get(item)
        if decided is not None:
            raise Conflict(f"item {shown(item)} is decided already ({decided})")
        return user, role

    def certify(self, item: str, reviewer: UUID, meta: Meta) -> None:
        self.check_decidable(item, reviewer)
        self.record(self.ReviewItemCertified, meta, item=item, reviewer=str(reviewer))

    def revoke(self, item: str, reviewer: UUID, role_revoked: bool, meta: Meta) -> None:
        self.check_decidable(item, reviewer)
        self.record(
            self.ReviewItemRevoked,
            meta,
            item=item,
            reviewer=str(reviewer),
            role_revoked=role_revoked,
        )

    def outcome(self) -> dict[str, int]:
        decided = list(self.decisions.values())
        return {
            "certified": decided.count(CERTIFIED),
            "revoked": decided.count(REVOKED),
            "undecided": len(self.items) - len(decided),
        }

    def close(self, meta: Meta) -> bool:
        """Record the outcome; False if closed already. Overdue: closed after its due time."""
        if self.closed:
            return False
        assert self.due is not None  # set by ReviewStarted
        self.record(
            self.ReviewClosed,
            meta,
            name=self.name,
            **self.outcome(),
            overdue=meta.timestamp > self.due,
        )
        return True


def revocation_reason(name: str, item: str, reason: str | None) -> str:
    """The reason the revocation of a revoked item records: the campaign, then the reviewer's
    reason, within the 500 characters a reason may have."""
    said = f"access review {name!r}, item {item}"
    if reason:
        said = f"{said}: {reason}"
    return said if len(said) <= 500 else said[:499] + "…"
