"""The read API's request and response bodies, with FlexMeasures v3_0 field names."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from projections.models import AccountModel, AnnotationModel, UserModel


def _in_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("a naive datetime: give its offset, e.g. 2026-03-01T00:00:00Z")
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        raise ValueError("out of range once converted to UTC") from None


UtcDateTime = Annotated[datetime, AfterValidator(_in_utc)]
"""A query's instant: timezone-aware, and representable in UTC."""


class Versions(BaseModel):
    flexmeasures_version: str
    versions: list[str]
    message: str


class Ping(BaseModel):
    message: str
    projection: Literal["ok", "failing"] = Field(
        description="failing: the read models could not catch up with the log, and the answers "
        "hold the last state they reached"
    )


class TokenRequest(BaseModel):
    email: str
    password: str


class Token(BaseModel):
    auth_token: str


class Problem(BaseModel):
    message: str
    status: str


class User(BaseModel):
    id: UUID | int = Field(description="A UUID; with LEDGER_API_IDS=flexmeasures, FlexMeasures' id")
    email: str
    username: str
    account_id: UUID | int
    active: bool
    timezone: str
    flexmeasures_roles: list[str | int] = Field(
        description="The roles the user holds: names; with LEDGER_API_IDS=flexmeasures, "
        "FlexMeasures' role ids"
    )
    last_login_at: datetime | None
    last_seen_at: datetime | None
    role_ends: dict[str, datetime] | None = Field(
        default=None,
        description="In GET /users/{id} (None in lists): the end fixed in advance (until) of "
        "each held role that has one.",
    )

    @classmethod
    def of(cls, user: UserModel) -> User:
        return cls(
            id=user.id,
            email=user.email,
            username=user.username,
            account_id=user.account_id,
            active=user.active,
            timezone=user.timezone,
            flexmeasures_roles=list(user.roles),
            last_login_at=user.last_login_at,
            last_seen_at=user.last_seen_at,
        )


class UsersPage(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    data: list[User]
    num_records: int = Field(alias="num-records")
    filtered_records: int = Field(alias="filtered-records")


class Account(BaseModel):
    id: UUID | int = Field(description="A UUID; with LEDGER_API_IDS=flexmeasures, FlexMeasures' id")
    name: str
    primary_color: str | None
    secondary_color: str | None
    logo_url: str | None
    account_roles: list[str]
    consultancy_account_id: UUID | int | None
    account_role_ends: dict[str, datetime] | None = Field(
        default=None,
        description="In GET /accounts/{id} (None in lists): the end fixed in advance (until) "
        "of each held account role that has one.",
    )

    @classmethod
    def of(cls, account: AccountModel) -> Account:
        return cls(
            id=account.id,
            name=account.name,
            primary_color=account.primary_color,
            secondary_color=account.secondary_color,
            logo_url=account.logo_url,
            account_roles=account.account_roles,
            consultancy_account_id=account.consultancy_account_id,
        )


class AccountsPage(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    data: list[Account]
    num_records: int = Field(alias="num-records")
    filtered_records: int = Field(alias="filtered-records")


class AuditLogEntry(BaseModel):
    """An entry of FlexMeasures' audit log (event, event_datetime, active_user_name,
    active_user_id, and the affected user and account), with the ledger's event name and the
    reason given."""

    event: str = Field(description="What changed, with old and new values, and on whom.")
    event_type: str = Field(description="The ledger's event name, e.g. RoleGranted.")
    event_datetime: datetime
    active_user_name: str | None = Field(description="Who did it: a username or an actor.")
    active_user_id: UUID | int | None = Field(
        description="A UUID; with LEDGER_API_IDS=flexmeasures, FlexMeasures' id where known"
    )
    affected_user_id: UUID | int | None = Field(
        description="The user it happened to, if a user (FlexMeasures' id as active_user_id)."
    )
    affected_account_id: UUID | int | None = Field(
        description="The account, or the user's account (FlexMeasures' id as active_user_id)."
    )
    reason: str | None


class AuditLogPage(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    data: list[AuditLogEntry]
    num_records: int = Field(alias="num-records")
    filtered_records: int = Field(alias="filtered-records")


class Change(AuditLogEntry):
    """An event of the change feed: an audit-log entry with its place in the log."""

    position: int = Field(description="The event's position in the log (its notification id).")
    aggregate_type: str = Field(description="User, Account, Role or AccountRole.")
    aggregate_id: UUID | int = Field(
        description="A UUID; of a user or account with LEDGER_API_IDS=flexmeasures, "
        "FlexMeasures' id where known"
    )


class Changes(BaseModel):
    changes: list[Change] = Field(description="The events after `after`, in log order.")
    next: int = Field(
        description="The cursor: pass it as `after` to read on. It moves past events the "
        "caller may not read, so it can be ahead of the last change shown."
    )


class Annotation(BaseModel):
    id: UUID
    account_id: UUID
    content: str
    start: datetime
    end: datetime
    belief_time: datetime | None
    source: str
    type: str

    @classmethod
    def of(cls, annotation: AnnotationModel) -> Annotation:
        return cls(
            id=annotation.id,
            account_id=annotation.account_id,
            content=annotation.content,
            start=annotation.start,
            end=annotation.end,
            belief_time=annotation.belief_time,
            source=str(annotation.source),
            type=annotation.type,
        )


class UserRoles(BaseModel):
    user_id: UUID
    at: datetime | None
    roles: list[str]
    ends: dict[str, datetime] = Field(
        default_factory=dict,
        description="The end fixed in advance (until) of each of `roles` that has one.",
    )


class ReviewItem(BaseModel):
    """An item of an access-review campaign: a grant held at its start, and its decision."""

    id: str = Field(description="CAMPAIGN#N")
    campaign: str
    user_id: UUID | int
    role: str
    account_id: UUID | int
    decision: str | None = Field(description="certified, revoked, or None: undecided")
    decided_at: datetime | None
    reviewer_id: UUID | int | None
    reason: str | None
    role_revoked: bool | None = Field(
        description="For a revoked item: whether the role's revocation came with the decision "
        "(False: the grant had ended already, or its user was erased)."
    )


class Review(BaseModel):
    """An access-review campaign as it stood at `at`. For a caller who reads only some
    accounts, the counts and the scope cover those accounts' items only."""

    name: str
    scope_kind: str = Field(description="accounts or roles")
    scope: list[str | int]
    reviewer_id: UUID | int | None = Field(
        description="None when the reviewer is a user the caller may not read."
    )
    due: datetime
    started_at: datetime
    status: str = Field(description="open, overdue (open past its due time) or closed")
    closed_at: datetime | None
    items: int
    certified: int
    revoked: int
    undecided: int
    overdue: bool


class ReviewWithItems(Review):
    item_list: list[ReviewItem]
