"""The questions of SPEC §4, each answered by an indexed look-up in the read models."""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final
from uuid import UUID

import pandas as pd
import pydantic
from pydantic import TypeAdapter
from sqlalchemy import (
    Connection,
    Engine,
    Select,
    String,
    Uuid,
    and_,
    bindparam,
    exists,
    false,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement

from ledger import references
from ledger.errors import ValidationError
from ledger.validation import (
    Moment,
    SourceName,
    as_uuid,
    optional,
    role_name,
    shown,
)
from projections import held
from projections import tables as t
from projections.models import (
    AccountModel,
    AccountRoleModel,
    AnnotationModel,
    RoleModel,
    UserModel,
    is_user,
)
from projections.personal import PersonalData
from projections.prepared import PreparedQuery, PreparedReader

AUDIT_COLUMNS: Final = [
    "position",
    "timestamp",
    "aggregate_id",
    "aggregate_type",
    "event",
    "actor",
    "reason",
    "command_id",
]
_ANNOTATION_LIST: Final = TypeAdapter(list[AnnotationModel])
_SOURCE_NAME: Final = TypeAdapter(SourceName)
ANNOTATION_FRAME_COLUMNS: Final = ["start", "end", "belief_time", "source", "type", "content"]
MAX_SOURCES: Final = 8192
"""The most sources one annotation search takes: padded, its bound values stay within what
every supported database accepts in one statement."""


def _moment(value: Any, what: str = "at") -> datetime | None:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC)  # the common case, without a validator round
    return optional(Moment, value, what)  # type: ignore[no-any-return]


# The hottest questions, built once with bound parameters (u: user id, r: role, at: instant).
_U, _R, _AT = (
    bindparam("u", type_=Uuid()),
    bindparam("r", type_=String()),
    bindparam("at", type_=t.UTCDateTime()),
)
_grants = t.role_grants.c
_ACTIVE_NOW = held.is_active(_U, None)
_ACTIVE_AT = held.is_active(_U, _AT)
_HELD_NOW = held.grants_held(_U, None)
_HELD_AT = held.grants_held(_U, _AT)
_HAS_ROLE_NOW = select(exists().where(_HELD_NOW, _grants.role == _R, _ACTIVE_NOW.scalar_subquery()))
_HAS_ROLE_AT = select(exists().where(_HELD_AT, _grants.role == _R, _ACTIVE_AT.scalar_subquery()))
_USER_BY_EMAIL = select(t.users.c.id).where(t.users.c.email_key == bindparam("e", type_=String()))
NOBODY: Final = UUID(int=0)  # the id no user has: what an email that no user holds names
_ROLES = {
    (True, False): select(_grants.role).where(_HELD_NOW),
    (True, True): select(_grants.role).where(_HELD_NOW, _ACTIVE_NOW.scalar_subquery()),
    (False, False): select(_grants.role).where(_HELD_AT),
    (False, True): select(_grants.role).where(_HELD_AT, _ACTIVE_AT.scalar_subquery()),
}


# One user or account by id, as `_users` / `_accounts` answer it for a condition on the id: the
# read API asks this on every request (the caller, then the user asked for and its account).
# One statement each, the row joined to the grants held now (a row per grant, or one with no
# grant); a user's grants with their fixed ends, which the read API shows beside the user.
_A = bindparam("a", type_=Uuid())
_account_grants = t.account_role_grants.c
_USER_BY_ID = (
    select(t.users, _grants.role, _grants.ends_at)
    .select_from(
        t.users.outerjoin(
            t.role_grants, and_(_grants.user_id == t.users.c.id, held.ROLE_GRANTS.covers(None))
        )
    )
    .where(t.users.c.id == _U)
    .order_by(_grants.role, _grants.granted_at)
)


def _account_where(condition: ColumnElement[bool]) -> Select[Any]:
    return (
        select(t.accounts, _account_grants.role)
        .select_from(
            t.accounts.outerjoin(
                t.account_role_grants,
                and_(
                    _account_grants.account_id == t.accounts.c.id,
                    held.ACCOUNT_ROLE_GRANTS.covers(None),
                ),
            )
        )
        .where(condition)
        .order_by(_account_grants.role)
    )


_ACCOUNT_BY_ID = _account_where(t.accounts.c.id == _A)
_ACCOUNT_OF_USER = _account_where(
    t.accounts.c.id == select(t.users.c.account_id).where(t.users.c.id == _U).scalar_subquery()
)
_USER_COLUMNS: Final = [column.name for column in t.users.columns]
_ACCOUNT_COLUMNS: Final = [column.name for column in t.accounts.columns]


class Queries:
    engine: Engine
    reader: PreparedReader
    personal: PersonalData

    # -- roles ----------------------------------------------------------------------------------

    def has_role(self, user: Any, role: Any, at: datetime | None = None) -> bool:
        """Whether the user effectively holds the role (now, or at `at`); never if inactive."""
        user_id, name, moment = self.resolve_user(user), role_name(role), _moment(at)
        query, params = (
            (_HAS_ROLE_NOW, {"u": user_id, "r": name})
            if moment is None
            else (_HAS_ROLE_AT, {"u": user_id, "r": name, "at": moment})
        )
        return bool(self.reader.scalar(query, params))

    def roles(self, user: Any, at: datetime | None = None, effective: bool = True) -> set[str]:
        """Role names held (now or at `at`); with `effective`, none while the user is inactive."""
        if not isinstance(effective, bool):
            raise ValidationError(f"invalid effective {shown(effective)}: must be True or False")
        user_id, moment = self.resolve_user(user), _moment(at)
        query = _ROLES[(moment is None, effective)]
        params: dict[str, Any] = {"u": user_id} if moment is None else {"u": user_id, "at": moment}
        rows = self.reader.all(query, params)
        return {row[0] for row in rows}

    def is_active(self, user: Any, at: datetime | None = None) -> bool:
        user_id, moment = self.resolve_user(user), _moment(at)
        query, params = (
            (_ACTIVE_NOW, {"u": user_id})
            if moment is None
            else (_ACTIVE_AT, {"u": user_id, "at": moment})
        )
        return bool(self.reader.scalar(query, params))

    def account_has_role(self, account: Any, role: Any, at: datetime | None = None) -> bool:
        account_id = as_uuid(account, "account")
        name, moment = role_name(role, "account role"), _moment(at)
        g = t.account_role_grants.c
        query = select(
            exists().where(
                g.account_id == account_id,
                g.role == name,
                held.ACCOUNT_ROLE_GRANTS.covers(moment),
            )
        )
        with self.engine.connect() as conn:
            return bool(conn.execute(query).scalar())

    def users_with_role(self, role: Any, at: datetime | None = None) -> list[UserModel]:
        """The effective holders of a role (now or at `at`), as their current user models."""
        name, moment = role_name(role), _moment(at)
        g = t.role_grants.c
        holders = (
            select(g.user_id)
            .where(
                g.role == name,
                held.ROLE_GRANTS.covers(moment),
                held.active(g.user_id, moment),
            )
            .distinct()
        )
        return self._users(t.users.c.id.in_(holders))

    def list_roles(self) -> list[RoleModel]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.roles.c.name, t.roles.c.description).order_by(t.roles.c.name)
            )
            return [RoleModel(name=r.name, description=r.description) for r in rows]

    def list_account_roles(self) -> list[AccountRoleModel]:
        r = t.account_roles.c
        with self.engine.connect() as conn:
            rows = conn.execute(select(r.name, r.description).order_by(r.name))
            return [AccountRoleModel(name=row.name, description=row.description) for row in rows]

    # -- users and accounts ---------------------------------------------------------------------

    def resolve_user(self, user: Any) -> UUID:
        """A user given by id (a UUID, its text, or a model) or by email (matched
        case-insensitively): every question about a user takes either. An email that no user
        holds names no user (the nil UUID), as an unknown id does."""
        found = references.user_id(user, self._user_id_for_email)
        return NOBODY if found is None else found

    def resolve_account(self, account: Any) -> UUID | None:
        """An account given by id (a UUID, its text, or a model) or by name: an open account's,
        else a closed one's (questions about the past name accounts closed since); None when
        no account has that name."""
        return references.account_id(account, self._account_id_for_name)

    def _account_id_for_name(self, name: str) -> UUID | None:
        a = t.accounts.c
        query = select(a.id).where(a.name == name.strip()).order_by(a.closed, a.id).limit(1)
        with self.engine.connect() as conn:
            found = conn.execute(query).scalar()
        return None if found is None else UUID(str(found))

    def get_user(self, user: Any) -> UserModel | None:
        found = self.get_user_and_role_ends(user)
        return None if found is None else found[0]

    def get_user_and_role_ends(self, user: Any) -> tuple[UserModel, dict[str, datetime]] | None:
        """`get_user`, and the user's `role_ends` now, read together."""
        return self._user_and_role_ends(
            self.reader.all(_USER_BY_ID, {"u": self.resolve_user(user)})
        )

    def get_user_with_account(
        self, user: Any
    ) -> tuple[UserModel, dict[str, datetime], AccountModel | None] | None:
        """`get_user_and_role_ends`, and the user's account (`get_account`), asked together:
        one round trip on PostgreSQL."""
        user_rows, account_rows = self.reader.all_of(*self.user_with_account_reads(user))
        found = self._user_and_role_ends(user_rows)
        if found is None:
            return None
        account = _account_of_rows(account_rows)
        if account is None or account.id != found[0].account_id:
            account = self.get_account(found[0].account_id)  # moved between the two reads
        return found[0], found[1], account

    def user_with_account_reads(self, user: Any) -> list[tuple[Select[Any], dict[str, Any]]]:
        """The statements (and their parameters) `get_user_with_account` sends together."""
        user_id = self.resolve_user(user)
        return [(_USER_BY_ID, {"u": user_id}), (_ACCOUNT_OF_USER, {"u": user_id})]

    def _user_and_role_ends(
        self, rows: list[Sequence[Any]]
    ) -> tuple[UserModel, dict[str, datetime]] | None:
        if not rows:
            return None
        width = len(_USER_COLUMNS)
        row = dict(zip(_USER_COLUMNS, rows[0][:width], strict=True))
        roles = [found[width] for found in rows if found[width] is not None]
        ends = {found[width]: found[width + 1] for found in rows if found[width + 1] is not None}
        self.personal.prepare([row["email"]])
        return self._user_model(row, roles), ends

    def find_user_by_email(self, email: str) -> UserModel | None:
        """The user with this email, matched case-insensitively: in the ledger's database
        through its claims (the read models hold no email to match), in a replay file by the
        email it holds."""
        user_id = self._user_id_for_email(email)
        return None if user_id is None else self.get_user(user_id)

    def _user_id_for_email(self, email: str) -> UUID | None:
        if self.personal.holds_ledger():
            return self.personal.user_id_for_email(email)
        key = str(email).strip().casefold()
        found = self.reader.scalar(_USER_BY_EMAIL, {"e": key}) if key else None
        return None if found is None else UUID(str(found))

    def list_users(self, account_id: Any = None, include_inactive: bool = False) -> list[UserModel]:
        conditions: list[ColumnElement[bool]] = []
        if account_id is not None:
            conditions.append(t.users.c.account_id == as_uuid(account_id, "account"))
        if not include_inactive:
            conditions.append(t.users.c.active.is_(True))
        return self._users(and_(True, *conditions))

    def _users(self, condition: ColumnElement[bool]) -> list[UserModel]:
        u, g = t.users.c, t.role_grants.c
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.users).where(condition).order_by(u.created_position)).all()
            roles = _roles_held_now(
                conn, (g.user_id, g.role), held.ROLE_GRANTS, select(u.id).where(condition)
            )
        self.personal.prepare(row.email for row in rows)  # one key serves email and username
        return [self._user_model(row._mapping, roles.get(row.id, [])) for row in rows]

    def _user_model(self, row: Mapping[Any, Any], roles: list[str]) -> UserModel:
        """A users row as its model (its sealed email prepared)."""
        reveal = self.personal.reveal
        return UserModel(
            id=row["id"],
            email=reveal(row["email"], row["id"], "email"),
            username=reveal(row["username"], row["id"], "username"),
            account_id=row["account_id"],
            timezone=row["timezone"],
            active=row["active"],
            erased=row["erased"],
            roles=roles,
            login_count=row["login_count"],
            last_login_at=row["last_login_at"],
            last_seen_at=row["last_seen_at"],
            created_at=row["created_at"],
        )

    def get_account(self, account: Any) -> AccountModel | None:
        account_id = as_uuid(account, "account")
        return _account_of_rows(self.reader.all(_ACCOUNT_BY_ID, {"a": account_id}))

    def list_accounts(self, include_closed: bool = False) -> list[AccountModel]:
        condition = and_(True) if include_closed else t.accounts.c.closed.is_(False)
        return self._accounts(condition)

    def _accounts(self, condition: ColumnElement[bool]) -> list[AccountModel]:
        a, g = t.accounts.c, t.account_role_grants.c
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.accounts).where(condition).order_by(a.name, a.id)).all()
            roles = _roles_held_now(
                conn,
                (g.account_id, g.role),
                held.ACCOUNT_ROLE_GRANTS,
                select(a.id).where(condition),
            )
        return [_account_model(row._mapping, roles.get(row.id, [])) for row in rows]

    # -- annotations ----------------------------------------------------------------------------

    @functools.cached_property
    def _fields_makers(self) -> dict[int, AnnotationFields]:
        """Per search compiled by the reader (by the id of its `PreparedQuery`, which the reader
        keeps), the maker of its rows' fields."""
        return {}

    def search_annotations(
        self,
        account: Any,
        annotations_after: datetime | None = None,
        annotations_before: datetime | None = None,
        beliefs_after: datetime | None = None,
        beliefs_before: datetime | None = None,
        source: Any = None,
        as_frame: bool = False,
        annotation_starts_after: datetime | None = None,
        annotation_ends_before: datetime | None = None,
    ) -> list[AnnotationModel] | pd.DataFrame:
        """The account's annotations, filtered as FlexMeasures' `search_annotations` does."""
        if annotation_starts_after is not None:
            warnings.warn(
                "annotation_starts_after is deprecated, use annotations_after",
                FutureWarning,
                stacklevel=2,
            )
            if annotations_after is None:
                annotations_after = annotation_starts_after
        if annotation_ends_before is not None:
            warnings.warn(
                "annotation_ends_before is deprecated, use annotations_before",
                FutureWarning,
                stacklevel=2,
            )
            if annotations_before is None:
                annotations_before = annotation_ends_before
        account_id = as_uuid(account, "account")
        params: dict[str, Any] = {"account": account_id}
        if (after := _moment(annotations_after, "annotations_after")) is not None:
            params["after"] = after
        if (before := _moment(annotations_before, "annotations_before")) is not None:
            params["before"] = before
        if (belief_after := _moment(beliefs_after, "beliefs_after")) is not None:
            params["beliefs_after"] = belief_after
        if (belief_before := _moment(beliefs_before, "beliefs_before")) is not None:
            params["beliefs_before"] = belief_before
        sources = None
        if source is not None:
            names, user_ids = _sources(source, self.resolve_user)
            # lists padded (with repeats) to a power of two: few distinct statements to compile
            names, user_ids = _padded(names), _padded(user_ids)
            for i, name in enumerate(names):
                params[f"name_{i}"] = name
            for i, user_id in enumerate(user_ids):
                params[f"user_{i}"] = user_id
            sources = (len(names), len(user_ids))
        statement = _annotation_search(
            after is not None,
            before is not None,
            belief_after is not None,
            belief_before is not None,
            sources,
        )
        query = self.reader.prepared(statement)
        fields = self._fields_makers.get(id(query))
        description, rows = self.reader.raw(query, query.parameters(params), fields is None)
        if fields is None:
            assert description is not None
            fields = self._fields_makers[id(query)] = _annotation_fields(query, description)
        # one validation for the whole list: a third less than a model at a time
        found = _ANNOTATION_LIST.validate_python(fields(rows, account_id))
        if not as_frame:
            return found
        return pd.DataFrame(
            [[getattr(a, c) for c in ANNOTATION_FRAME_COLUMNS] for a in found],
            columns=ANNOTATION_FRAME_COLUMNS,
        )

    # -- audit log ------------------------------------------------------------------------------

    def audit_log(
        self,
        aggregate_id: Any = None,
        *,
        account_id: Any = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> pd.DataFrame:
        """One row per domain event, oldest first, within [since, until); with `account_id`, the
        account's events and those of its users."""
        log = t.audit_log.c
        conditions: list[ColumnElement[bool]] = []
        if aggregate_id is not None:
            aggregate = references.user_id(aggregate_id, self._user_id_for_email, "aggregate")
            conditions.append(log.aggregate_id == (NOBODY if aggregate is None else aggregate))
        if account_id is not None:
            conditions.append(log.account_id == as_uuid(account_id, "account"))
        if (start := _moment(since, "since")) is not None:
            conditions.append(log.timestamp >= start)
        if (end := _moment(until, "until")) is not None:
            conditions.append(log.timestamp < end)
        query = select(t.audit_log).where(*conditions).order_by(log.position)
        with self.engine.connect() as conn:
            found = conn.execute(query).all()
        self.personal.prepare(value for row in found for value in dict(row.fields).values())
        rows = [
            {
                **{c: getattr(row, c) for c in AUDIT_COLUMNS},
                **self.personal.reveal_fields(row.event, row.aggregate_id, dict(row.fields)),
            }
            for row in found
        ]
        frame = pd.DataFrame(rows)
        for column in AUDIT_COLUMNS:
            if column not in frame.columns:
                frame[column] = pd.Series(dtype=object)
        return frame


def _account_of_rows(rows: list[Sequence[Any]]) -> AccountModel | None:
    """An account as `_ACCOUNT_BY_ID` reads it (a row per account role held now)."""
    if not rows:
        return None
    width = len(_ACCOUNT_COLUMNS)
    row = dict(zip(_ACCOUNT_COLUMNS, rows[0][:width], strict=True))
    return _account_model(row, [found[width] for found in rows if found[width] is not None])


def _account_model(row: Mapping[Any, Any], roles: list[str]) -> AccountModel:
    return AccountModel(
        id=row["id"],
        name=row["name"],
        primary_color=row["primary_color"],
        secondary_color=row["secondary_color"],
        logo_url=row["logo_url"],
        consultancy_account_id=row["consultancy_account_id"],
        account_roles=roles,
        closed=row["closed"],
        created_at=row["created_at"],
    )


def _roles_held_now(
    conn: Connection,
    grant: tuple[ColumnElement[UUID], ColumnElement[str]],
    grants: held.Period,
    holders: Select[Any],
) -> dict[UUID, list[str]]:
    """The roles each of `holders` (a subquery of ids) holds now, by name; one query, however
    many holders (no list of ids as parameters). `grant`: the grants' holder and role columns."""
    found: dict[UUID, list[str]] = defaultdict(list)
    holder, role = grant
    query = (
        select(holder, role)
        .where(holder.in_(holders.scalar_subquery()), grants.covers(None))
        .order_by(role)
    )
    for holder_id, name in conn.execute(query):
        found[holder_id].append(name)
    return found


def _sources(source: Any, resolve_user: Callable[[Any], UUID]) -> tuple[list[str], list[UUID]]:
    """Sources by name, by user id (or user model), or a list of them: (names, user ids). A
    text is a name, and also the user whose id or email it is."""
    one = isinstance(source, str) or not isinstance(source, Iterable) or is_user(source)
    wanted: Sequence[Any] = [source] if one else list(source)  # (a user model is iterable)
    if len(wanted) > MAX_SOURCES:
        raise ValidationError(
            f"invalid source: {len(wanted)} sources given, at most {MAX_SOURCES} are allowed"
        )
    names: list[str] = []
    user_ids: list[UUID] = []
    for item in wanted:
        if isinstance(item, str):
            if _is_source_name(item):  # else no source can have it (nor be encoded)
                names.append(item)
            if references.is_email(item):
                user_ids.append(resolve_user(item))
            elif len(item) >= 32:  # else no UUID's text (and a failed parse costs a raise)
                with contextlib.suppress(ValueError):
                    user_ids.append(UUID(item))
        else:
            user_ids.append(as_uuid(item, "source user"))
    return names, user_ids


def _is_source_name(text: str) -> bool:
    try:
        _SOURCE_NAME.validate_python(text)
    except pydantic.ValidationError:
        return False
    return True


def _padded(items: list[Any]) -> list[Any]:
    if not items:
        return items
    return items + [items[0]] * ((1 << (len(items) - 1).bit_length()) - len(items))


ANNOTATION_COLUMNS: Final = [  # a search's row, in order
    "id",
    "content",
    "start",
    "end",
    "belief_time",
    "source_name",
    "source_user_id",
    "type",
]


class _SecondsBefore(ColumnElement[datetime]):
    """`moment - seconds` in SQL, comparable with a stored UTCDateTime."""

    inherit_cache = True
    type = t.UTCDateTime()

    def __init__(self, moment: ColumnElement[datetime], seconds: ColumnElement[float]) -> None:
        self.moment, self.seconds = moment, seconds


@compiles(_SecondsBefore, "sqlite")
def _seconds_before_sqlite(element: _SecondsBefore, compiler: Any, **kw: Any) -> str:
    moment, seconds = (compiler.process(part, **kw) for part in (element.moment, element.seconds))
    return f"strftime('%Y-%m-%d %H:%M:%f', {moment}, '-' || ({seconds}) || ' seconds')"


@compiles(_SecondsBefore, "postgresql")
def _seconds_before_postgresql(element: _SecondsBefore, compiler: Any, **kw: Any) -> str:
    moment, seconds = (compiler.process(part, **kw) for part in (element.moment, element.seconds))
    return f"({moment} - make_interval(secs => {seconds}))"


@functools.lru_cache(maxsize=256)
def _annotation_search(
    after: bool,
    before: bool,
    beliefs_after: bool,
    beliefs_before: bool,
    sources: tuple[int, int] | None,
) -> Select[Any]:
    """The search for one combination of filters (and numbers of source names and user ids),
    with bound parameters named as `search_annotations` fills them; built once per combination."""
    n = t.annotations.c

    def moment(name: str) -> Any:
        return bindparam(name, type_=t.UTCDateTime())

    conditions: list[ColumnElement[bool]] = [
        n.account_id == bindparam("account", type_=Uuid()),
        n.removed_at.is_(None),
    ]
    if after:
        # No annotation is longer than the account's span, so one that ends after `after`
        # starts after `after - span`: that bound lets the (account, start) index do the work.
        span = (
            select(t.accounts.c.annotation_span + 1)
            .where(t.accounts.c.id == bindparam("account", type_=Uuid()))
            .scalar_subquery()
        )
        conditions += [n.end > moment("after"), n.start > _SecondsBefore(moment("after"), span)]
    if before:
        conditions.append(n.start < moment("before"))
    if beliefs_after:
        conditions.append(or_(n.belief_time.is_(None), n.belief_time > moment("beliefs_after")))
    if beliefs_before:
        conditions.append(or_(n.belief_time.is_(None), n.belief_time <= moment("beliefs_before")))
    if sources is not None:
        names, users = sources
        # IN lists, not chains of OR: SQLite refuses an expression tree that deep
        by_name = [bindparam(f"name_{i}", type_=String()) for i in range(names)]
        by_user = [bindparam(f"user_{i}", type_=Uuid()) for i in range(users)]
        conditions.append(
            or_(
                false(),
                *([n.source_name.in_(by_name)] if by_name else []),
                *([n.source_user_id.in_(by_user)] if by_user else []),
            )
        )
    columns: list[ColumnElement[Any]] = [t.annotations.c[name] for name in ANNOTATION_COLUMNS]
    # the id as the driver gives it (SQLite: hex text): the model's validator makes the UUID,
    # at a fifth of the cost of SQLAlchemy's processor
    columns[0] = type_coerce(n.id, String())
    return select(*columns).where(*conditions).order_by(n.start, n.end, n.id)


AnnotationFields = Callable[[list[Sequence[Any]], UUID], list[dict[str, Any]]]


def _annotation_fields(query: PreparedQuery, description: Sequence[Any]) -> AnnotationFields:
    """The models' fields from a search's rows (as the driver gives them) in one pass, each
    column's result processor applied to its values but None."""
    processors = dict(zip(ANNOTATION_COLUMNS, query.processors(description), strict=True))
    # text needs none in either dialect (nor the id, read as text: see `_annotation_search`)
    unprocessed = [processors[name] for name in ("id", "content", "source_name", "type")]
    assert unprocessed == [None] * 4, processors
    start_at, end_at, belief_at, user = (
        processors[name] or _unchanged for name in ("start", "end", "belief_time", "source_user_id")
    )

    def fields(rows: list[Sequence[Any]], account_id: UUID) -> list[dict[str, Any]]:
        return [
            {
                "id": id_,
                "account_id": account_id,
                "content": content,
                "start": start_at(start),
                "end": end_at(end),
                "belief_time": None if belief_time is None else belief_at(belief_time),
                "source": source_name if source_user_id is None else user(source_user_id),
                "type": type_,
            }
            for id_, content, start, end, belief_time, source_name, source_user_id, type_ in rows
        ]

    return fields


def _unchanged(value: Any) -> Any:
    return value
