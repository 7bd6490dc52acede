"""The projector: reads the notification log in pages and writes each page's read-model rows
together with its tracking position in ONE transaction, so a crash at any instant neither
loses nor double-applies an event."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Final
from uuid import UUID

import sqlalchemy.exc
from sqlalchemy import Connection, Engine, bindparam, case, delete, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.schema import CreateIndex, DropIndex

from ledger.application import Ledger
from ledger.domain import ERASED, Account, AccountRole, ExternalSource, Role, User
from ledger.domain.reviews import ReviewCampaign
from ledger.domain.separation import SeparationPolicy
from ledger.errors import LedgerError
from projections import held
from projections import tables as t
from projections.audit_rows import LOG_COLUMNS, event_fields, sqlite_log_row
from projections.log_pages import read_page
from projections.page_writer import PageWriter, WriteStatements
from projections.personal import PERSONAL_FIELDS

TRACKING_NAME: Final = "read_models"
# A tracking row, there while a long catch-up from an empty read model leaves out the indexes
# only queries use (`tables.for_queries`); the catch-up that reaches the end builds them.
# A million-event log on SQLite: 12.8k -> 15.0k events/s, the indexes built in 2 s.
BULK_MARKER: Final = "bulk-load"
BULK_FROM: Final = 10_000  # events ahead of an empty read model
Event = Any  # a decoded domain event of the ledger
Handler = Callable[["Projector", PageWriter, Event], None]
_HANDLERS: dict[type[Any], Handler] = {}


class ProjectionError(LedgerError):
    """An event could not be projected: the read models stay at the event before it."""


def handles(*event_classes: type[Any]) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        for event_class in event_classes:
            _HANDLERS[event_class] = handler
        return handler

    return register


_AGGREGATE_TYPES: dict[type[Any], str] = {}  # one entry per event class


def aggregate_type(event: Event) -> str:
    kind = _AGGREGATE_TYPES.get(type(event))
    if kind is None:
        kind = _AGGREGATE_TYPES[type(event)] = type(event).__qualname__.split(".")[0]
    return kind


class Projector:
    """`sealed`: keep personal fields as the events seal them (see `projections.personal`);
    else write them in the open."""

    def __init__(
        self, ledger: Ledger, engine: Engine, *, page_size: int = 1000, sealed: bool = True
    ) -> None:
        self.ledger = ledger
        self.engine = engine
        self.page_size = page_size
        self.sealed = sealed
        # each user's account, by the user id's int (a UUID hashes in Python, an int in C)
        self._account_of_user: dict[int, UUID] = {}
        self.position_now = 0  # the position of the event being applied
        self._pending_log: list[Any] = []  # the rows' values, or on SQLite their parameters
        # per account, the longest annotation added since the last flush: one UPDATE each,
        # not one per annotation (the result is the same maximum)
        self._pending_spans: dict[UUID, float] = {}
        self._statements = WriteStatements(engine.dialect)
        # SQLite: the audit log's rows bound as they are built (see `projections.audit_rows`)
        self._log_query = self._statements.get(_INSERT_LOG, LOG_COLUMNS)
        self._log_row = sqlite_log_row(self._log_query)
        self.bulk_from = BULK_FROM
        self.in_bulk = False  # whether the query indexes may be missing
        self._started = False  # seen a read model with events projected and every index
        dbapi = engine.dialect.loaded_dbapi
        # failures of the database itself (a lost connection, a full disk), not of an event
        self._database_errors: tuple[type[Exception], ...] = (
            sqlalchemy.exc.OperationalError,
            sqlalchemy.exc.InterfaceError,
            dbapi.OperationalError,
            dbapi.InterfaceError,
        )

    def position(self, conn: Connection, *, lock: bool = False) -> int:
        query = select(t.projection_tracking.c.position).where(
            t.projection_tracking.c.name == TRACKING_NAME
        )
        if lock:
            query = query.with_for_update()
        found = conn.execute(query).scalar_one_or_none()
        if found is None and lock:
            # two projectors starting at once both find no row to lock: one inserts it, the
            # other waits for that, and then both lock it in turn
            start = _INSERT_IF_ABSENT[conn.dialect.name](t.projection_tracking)
            conn.execute(start.values(name=TRACKING_NAME, position=0).on_conflict_do_nothing())
            found = conn.execute(query).scalar_one()
        return 0 if found is None else int(found)

    def catch_up(self, *, until: datetime | None = None, stop: int | None = None) -> int:
        """Project every event recorded so far, a page per transaction; return how many.

        `until` leaves out events recorded after that instant (for point-in-time replays);
        `stop` reads no further than that position.
        """
        self._begin_bulk_load(stop)
        projected = 0
        while True:
            read, applied = self.project_page(until=until, stop=stop)
            if not read:
                break
            projected += applied
        self._end_bulk_load()
        return projected

    def _tracking(self, conn: Connection) -> dict[str, int]:
        rows = conn.execute(select(t.projection_tracking.c.name, t.projection_tracking.c.position))
        return {name: int(position) for name, position in rows}

    def _begin_bulk_load(self, stop: int | None) -> None:
        """Leave the query indexes out if the read model is empty and the log is long."""
        if self._started:
            return
        with self.engine.connect() as conn:
            tracking = self._tracking(conn)
        if BULK_MARKER in tracking:
            self.in_bulk = True  # left by a catch-up that did not finish
            return
        if tracking.get(TRACKING_NAME, 0) > 0:
            self._started = True
            return
        head = self.ledger.recorder.max_notification_id() or 0
        if (head if stop is None else min(head, stop)) < self.bulk_from:
            return
        with self.engine.begin() as conn:
            position = self.position(conn, lock=True)
            marked = BULK_MARKER in self._tracking(conn)
            if position == 0 and not marked:  # else another process got here first
                for index in t.QUERY_INDEXES:
                    conn.execute(DropIndex(index, if_exists=True))
                conn.execute(insert(t.projection_tracking).values(name=BULK_MARKER, position=0))
        self.in_bulk = position == 0 or marked

    def _end_bulk_load(self) -> None:
        """Build the indexes left out (once: the first catch-up to get here does it)."""
        if not self.in_bulk:
            return
        with self.engine.begin() as conn:
            self.position(conn, lock=True)
            if BULK_MARKER in self._tracking(conn):
                for index in t.QUERY_INDEXES:
                    conn.execute(CreateIndex(index, if_not_exists=True))
                conn.execute(
                    delete(t.projection_tracking).where(t.projection_tracking.c.name == BULK_MARKER)
                )
        self.in_bulk = False
        self._started = True

    def project_page(
        self, *, until: datetime | None = None, stop: int | None = None
    ) -> tuple[int, int]:
        """Project the next page of events and advance the position, in one transaction;
        return how many events were read and how many applied.

        If an event cannot be projected, ProjectionError names it and the page is rolled
        back: the read models stay at the last page projected whole."""
        try:
            return self._project(until, stop, careful=False)
        except ProjectionError:
            raise
        except self._database_errors:
            raise
        except Exception:  # some event of the page: run the page again to name it
            return self._project(until, stop, careful=True)

    def _project(
        self, until: datetime | None, stop: int | None, *, careful: bool
    ) -> tuple[int, int]:
        """`careful`: decode and apply the events one at a time, each one's statements
        answered before the next, so a failure names its event."""
        applied = 0
        with self.engine.begin() as conn:
            start = self.position(conn, lock=True) + 1
            if stop is not None and start > stop:
                return 0, 0
            notifications = read_page(self.ledger.recorder, start, self.page_size, stop)
            self._pending_log, self._pending_spans = [], {}
            with PageWriter(conn, self._statements) as writer:
                if careful:
                    events = [self._decode(notification) for notification in notifications]
                else:
                    events = self.ledger.to_domain_events(notifications, opened=not self.sealed)
                for notification, event in zip(notifications, events, strict=True):
                    if until is None or event.timestamp <= until:
                        if careful:
                            self._apply_one(writer, notification, event)
                        else:
                            self.apply(writer, notification.id, event)
                        applied += 1
                self.flush(writer)
            if notifications:
                conn.execute(
                    update(t.projection_tracking)
                    .where(t.projection_tracking.c.name == TRACKING_NAME)
                    .values(position=notifications[-1].id)
                )
        return len(notifications), applied

    def _decode(self, notification: Any) -> Event:
        try:
            return self.ledger.to_domain_events([notification], opened=not self.sealed)[0]
        except self._database_errors:
            raise
        except Exception as error:
            raise ProjectionError(_cannot_project(notification, error)) from error

    def _apply_one(self, writer: PageWriter, notification: Any, event: Event) -> None:
        try:
            self.apply(writer, notification.id, event)
            self.flush(writer)
            writer.connection()  # every statement sent so far answered
        except self._database_errors:
            raise
        except Exception as error:
            raise ProjectionError(_cannot_project(notification, error)) from error

    def apply(self, writer: PageWriter, position: int, event: Event) -> None:
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            self.position_now = position
            handler(self, writer, event)
        self._log(writer, position, event)

    def _log(self, writer: PageWriter, position: int, event: Event) -> None:
        """Queue the event's audit-log row; a page's rows are inserted together."""
        kind = aggregate_type(event)
        account_id = None
        if kind == "Account":
            account_id = event.originator_id
        elif kind == "User":
            account_id = self.account_of(writer, event.originator_id)
        if self._log_row is not None:
            self._pending_log.append(self._log_row(position, event, kind, account_id))
            return
        self._pending_log.append(
            {
                "position": position,
                "timestamp": event.timestamp,
                "aggregate_id": event.originator_id,
                "aggregate_type": kind,
                "account_id": account_id,
                "event": type(event).__name__,
                "actor": event.actor,
                "reason": event.reason,
                "command_id": event.command_id,
                "fields": event_fields(event),
            }
        )

    def flush(self, writer: PageWriter) -> None:
        """Queue the page's pending writes: the accounts' annotation spans, the audit-log rows
        (before the page commits, or before a handler that reads the audit log)."""
        if self._pending_spans:
            for account_id, span in self._pending_spans.items():
                writer.execute(_WIDEN_SPAN, {"b_id": account_id, "b_span": span}, account_id)
            self._pending_spans = {}
        if self._pending_log:
            if self._log_row is not None:
                writer.executemany_bound(_INSERT_LOG, self._log_query, self._pending_log)
            else:
                writer.executemany(_INSERT_LOG, self._pending_log)
            self._pending_log = []

    def widen_span(self, account_id: UUID, span: float) -> None:
        """Queue `accounts.annotation_span = max(annotation_span, span)` (sent by `flush`)."""
        known = self._pending_spans.get(account_id)
        if known is None or known < span:
            self._pending_spans[account_id] = span

    def remember_account(self, user_id: UUID, account_id: UUID) -> None:
        self._account_of_user[user_id.int] = account_id

    def account_of(self, writer: PageWriter, user_id: UUID) -> UUID | None:
        account_id = self._account_of_user.get(user_id.int)
        if account_id is None:
            rows = writer.all(_SELECT_ACCOUNT_OF, {"user_id": user_id})
            account_id = rows[0][0] if rows else None
            if account_id is not None:
                self._account_of_user[user_id.int] = account_id
        return account_id


def _cannot_project(notification: Any, error: Exception) -> str:
    """One line naming the event that failed, its type and why."""
    kind = notification.topic.rpartition(":")[2] or notification.topic
    lines = str(error).strip().splitlines()
    why = f"{type(error).__name__}: {lines[0][:200]}" if lines else type(error).__name__
    return f"cannot project event {notification.id} ({kind}): {why}"


# -- statements, built once -----------------------------------------------------------------
# The handlers' INSERTs leave out the columns that start NULL (revoked_at, removed_at, ...):
# sqlite3 adapts every None it binds, with two failed attribute look-ups each.

_INSERT_LOG = insert(t.audit_log)
_INSERT_IF_ABSENT: Final[dict[str, Any]] = {
    "postgresql": postgresql.insert,
    "sqlite": sqlite.insert,
}
_AUDIT_BY_AGGREGATE = next(i for i in t.QUERY_INDEXES if i.name == "ix_audit_log_aggregate_id")
_SELECT_ACCOUNT_OF = select(t.users.c.account_id).where(t.users.c.id == bindparam("user_id"))
_INSERT_ROLE, _INSERT_ACCOUNT_ROLE = insert(t.roles), insert(t.account_roles)
_INSERT_ACCOUNT = insert(t.accounts)
_INSERT_ACCOUNT_ROLE_GRANT = insert(t.account_role_grants)
_INSERT_ANNOTATION = insert(t.annotations)
_INSERT_USER = insert(t.users)
_INSERT_ACTIVITY = insert(t.user_activity)
_INSERT_ROLE_GRANT = insert(t.role_grants)
_INSERT_LOGIN = insert(t.logins)
_u, _a, _g, _ag, _act, _n = (
    t.users.c,
    t.accounts.c,
    t.role_grants.c,
    t.account_role_grants.c,
    t.user_activity.c,
    t.annotations.c,
)
_AT: Any = bindparam("b_at", type_=t.UTCDateTime())  # typed: in a CASE it is not inferred
_SET_CONSULTANCY = (
    update(t.accounts)
    .where(_a.id == bindparam("b_id"))
    .values(consultancy_account_id=bindparam("b_consultancy"))
)
_CLOSE_ACCOUNT = (
    update(t.accounts).where(_a.id == bindparam("b_id")).values(closed=True, closed_at=_AT)
)
_REVOKE_ACCOUNT_ROLE = (
    update(t.account_role_grants)
    .where(
        _ag.account_id == bindparam("b_id"),
        _ag.role == bindparam("b_role"),
        held.ACCOUNT_ROLE_GRANTS.open(),
    )
    .values(revoked_at=_AT)
)
_MOVE_ACCOUNT_ROLE_END = (
    update(t.account_role_grants)
    .where(
        _ag.account_id == bindparam("b_id"),
        _ag.role == bindparam("b_role"),
        held.ACCOUNT_ROLE_GRANTS.open(),
    )
    .values(ends_at=_AT)
)
_REMOVE_ANNOTATION = update(t.annotations).where(_n.id == bindparam("b_id")).values(removed_at=_AT)
_REVOKE_ROLE = (
    update(t.role_grants)
    .where(_g.user_id == bindparam("b_id"), _g.role == bindparam("b_role"), held.ROLE_GRANTS.open())
    .values(revoked_at=_AT)
)
_MOVE_ROLE_END = (
    update(t.role_grants)
    .where(_g.user_id == bindparam("b_id"), _g.role == bindparam("b_role"), held.ROLE_GRANTS.open())
    .values(ends_at=_AT)
)
_SET_ACTIVE = update(t.users).where(_u.id == bindparam("b_id")).values(active=bindparam("b_active"))
_CLOSE_ACTIVITY = (
    update(t.user_activity)
    .where(_act.user_id == bindparam("b_id"), held.ACTIVITY.open())
    .values(active_to=_AT)
)
_COUNT_LOGIN = (
    update(t.users)
    .where(_u.id == bindparam("b_id"))
    .values(
        login_count=_u.login_count + 1,
        last_login_at=case(
            (or_(_u.last_login_at.is_(None), _u.last_login_at < _AT), _AT), else_=_u.last_login_at
        ),
    )
)
_SPAN: Any = bindparam("b_span")
_WIDEN_SPAN = (
    update(t.accounts)
    .where(_a.id == bindparam("b_id"))
    .values(annotation_span=case((_a.annotation_span < _SPAN, _SPAN), else_=_a.annotation_span))
)
_MOVE_USER = (
    update(t.users).where(_u.id == bindparam("b_id")).values(account_id=bindparam("b_account"))
)
_INSERT_USER_MOVE = insert(t.user_moves)
_SEEN = update(t.users).where(_u.id == bindparam("b_id")).values(last_seen_at=_AT)


# -- role catalogues ----------------------------------------------------------------------------


@handles(Role.RoleDefined, AccountRole.AccountRoleDefined)
def _role_defined(p: Projector, w: PageWriter, e: Event) -> None:
    statement = _INSERT_ROLE if isinstance(e, Role.RoleDefined) else _INSERT_ACCOUNT_ROLE
    w.execute(statement, {"name": e.name, "description": e.description, "defined_at": e.timestamp})


@handles(Role.RoleDescribed, AccountRole.AccountRoleDescribed)
def _role_described(p: Projector, w: PageWriter, e: Event) -> None:
    table = t.roles if isinstance(e, Role.RoleDescribed) else t.account_roles
    w.connection().execute(
        update(table).where(table.c.name == e.name).values(description=e.description)
    )


# -- separation of duties -----------------------------------------------------------------------

_INSERT_SOD_RULE = insert(t.sod_rules)
_REMOVE_SOD_RULE = (
    update(t.sod_rules)
    .where(t.sod_rules.c.name == bindparam("b_name"), held.SOD_RULES.open())
    .values(removed_at=_AT)
)


@handles(SeparationPolicy.SodRuleDefined)
def _sod_rule_defined(p: Projector, w: PageWriter, e: Event) -> None:
    first, second = e.roles
    w.execute(
        _INSERT_SOD_RULE,
        {
            "name": e.name,
            "scope": e.scope,
            "first_role": first,
            "second_role": second,
            "defined_at": e.timestamp,
            "removed_at": None,
        },
    )


@handles(SeparationPolicy.SodRuleRemoved)
def _sod_rule_removed(p: Projector, w: PageWriter, e: Event) -> None:
    w.execute(_REMOVE_SOD_RULE, {"b_name": e.name, "b_at": e.timestamp})


# -- access-review campaigns ----------------------------------------------------------------------

_INSERT_CAMPAIGN = insert(t.review_campaigns)
_INSERT_REVIEW_ITEM = insert(t.review_items)
_DECIDE_ITEM = (
    update(t.review_items)
    .where(t.review_items.c.id == bindparam("b_id"))
    .values(
        decision=bindparam("b_decision"),
        decided_at=_AT,
        reviewer_id=bindparam("b_reviewer"),
        decided_by=bindparam("b_actor"),
        decision_reason=bindparam("b_reason"),
        role_revoked=bindparam("b_role_revoked"),
    )
)
_CLOSE_CAMPAIGN = (
    update(t.review_campaigns)
    .where(t.review_campaigns.c.name == bindparam("b_name"))
    .values(
        closed_at=_AT,
        closed_by=bindparam("b_actor"),
        certified=bindparam("b_certified"),
        revoked=bindparam("b_revoked"),
        undecided=bindparam("b_undecided"),
        overdue=bindparam("b_overdue"),
    )
)


@handles(ReviewCampaign.ReviewStarted)
def _review_started(p: Projector, w: PageWriter, e: Event) -> None:
    w.execute(
        _INSERT_CAMPAIGN,
        {
            "name": e.name,
            "scope_kind": e.scope_kind,
            "scope": list(e.scope),
            "reviewer_id": UUID(e.reviewer),
            "due": e.due,
            "started_at": e.timestamp,
            "started_by": e.actor,
            "closed_at": None,
            "closed_by": None,
            "certified": None,
            "revoked": None,
            "undecided": None,
            "overdue": None,
        },
    )
    if e.items:
        w.executemany(
            _INSERT_REVIEW_ITEM,
            [
                {
                    "id": item["id"],
                    "campaign": e.name,
                    "number": number,
                    "user_id": UUID(item["user"]),
                    "role": item["role"],
                    "account_id": UUID(item["account"]),
                    "decision": None,
                    "decided_at": None,
                    "reviewer_id": None,
                    "decided_by": None,
                    "decision_reason": None,
                    "role_revoked": None,
                }
                for number, item in enumerate(e.items, start=1)
            ],
        )


@handles(ReviewCampaign.ReviewItemCertified, ReviewCampaign.ReviewItemRevoked)
def _review_item_decided(p: Projector, w: PageWriter, e: Event) -> None:
    certified = isinstance(e, ReviewCampaign.ReviewItemCertified)
    w.execute(
        _DECIDE_ITEM,
        {
            "b_id": e.item,
            "b_decision": "certified" if certified else "revoked",
            "b_at": e.timestamp,
            "b_reviewer": UUID(e.reviewer),
            "b_actor": e.actor,
            "b_reason": e.reason,
            "b_role_revoked": None if certified else e.role_revoked,
        },
    )


@handles(ReviewCampaign.ReviewClosed)
def _review_closed(p: Projector, w: PageWriter, e: Event) -> None:
    w.execute(
        _CLOSE_CAMPAIGN,
        {
            "b_name": e.name,
            "b_at": e.timestamp,
            "b_actor": e.actor,
            "b_certified": e.certified,
            "b_revoked": e.revoked,
            "b_undecided": e.undecided,
            "b_overdue": e.overdue,
        },
    )


# -- accounts -----------------------------------------------------------------------------------


@handles(Account.AccountCreated)
def _account_created(p: Projector, w: PageWriter, e: Event) -> None:
    w.execute(
        _INSERT_ACCOUNT,
        {
            "id": e.originator_id,
            "name": e.name,
            "primary_color": e.primary_color,
            "secondary_color": e.secondary_color,
            "logo_url": e.logo_url,
            "consultancy_account_id": e.consultancy_account_id,
            "closed": False,
            "created_at": e.timestamp,
            "closed_at": None,
            "annotation_span": 0.0,
        },
        e.originator_id,
    )


@handles(Account.AccountUpdated)
def _account_updated(p: Projector, w: PageWriter, e: Event) -> None:
    w.connection().execute(update(t.accounts).where(_a.id == e.originator_id).values(**e.changes))


@handles(Account.ConsultancySet)
def _consultancy_set(p: Projector, w: PageWriter, e: Event) -> None:
    w.execute(
        _SET_CONSULTANCY,
        {"b_id": e.originator_id, "b_consultancy": e.consultancy_account_id},
        e.originator_id,
    )


@handles(Account.AccountClosed)
def _account_closed(p: Projector, w: PageWriter, e: Event) -> None:
    w.execute(_CLOSE_ACCOUNT, {"b_id": e.originator_id, "b_at": e.timestamp}, e.originator_id)


@handles(Account.AccountRoleGranted)
def _account_role_granted(p: Projector, w: PageWriter, e: Event) -> None:
    w.execute(
        _INSERT_ACCOUNT_ROLE_GRANT,
        {
            "account_id": e.originator_id,
            "role": e.role,
            "granted_at": e.timestamp,
            "ends_at": e.until,
        },
        (e.originator_id, e.role),
    )


@handles(Account.AccountRoleRevoked)
def _account_role_revoked(p: Projector, w: PageWriter, e: Event) -> None:
    w.execute(
        _REVOKE_ACCOUNT_ROLE,
        {"b_id": e.originator_id, "b_role": e.role, "b_at": e.timestamp},
        (e.originator_id, e.role),
    )


@handles(Account.AccountRoleExpired)
def _account_role_expired(p: Projector, w: PageWriter, e: Event) -> None:
    # the grant ended at its fixed end, not when the expiry was recorded
    w.execute(
        _REVOKE_ACCOUNT_ROLE,
        {"b_id": e.originator_id, "b_role": e.role, "b_at": e.at},
        (e.originator_id, e.role),
    )


@handles(Account.AccountRoleGrantExtended)
def _account_role_grant_extended(p: Projector, w: PageWriter, e: Event) -> None:
    w.execute(
        _MOVE_ACCOUNT_ROLE_END,
        {"b_id": e.originator_id, "b_role": e.role, "b_at": e.until},
        (e.originator_id, e.role),
    )


@handles(Account.AnnotationAdded)
def _annotation_added(p: Projector, w: PageWriter, e: Event) -> None:
    w.execute(
        _INSERT_ANNOTATION,
        {
            "id": e.annotation_id,
            "account_id": e.originator_id,
            "content": e.content,
            "start": e.start,
            "end": e.end,
            "belief_time": e.belief_time,
            "source_name": e.source_name,
            "source_user_id": e.source_user_id,
            "type": e.type,
            "added_at": e.timestamp,
        },
        e.annotation_id,
    )
    p.widen_span(e.originator_id, (e.end - e.start).total_seconds())


@handles(Account.AnnotationRemoved)
def _annotation_removed(p: Projector, w: PageWriter, e: Event) -> None:
    w.execute(_REMOVE_ANNOTATION, {"b_id": e.annotation_id, "b_at": e.timestamp}, e.annotation_id)


# -- users --------------------------------------------------------------------------------------


def _email_key(p: Projector, email: str) -> str | None:
    """The casefolded email, for look-ups in a read model that holds it in the open."""
    return None if p.sealed or email == ERASED else email.casefold()


@handles(User.UserCreated)
def _user_created(p: Projector, w: PageWriter, e: Event) -> None:
    w.execute(
        _INSERT_USER,
        {
            "id": e.originator_id,
            "email": e.email,
            "email_key": _email_key(p, e.email),
            "username": e.username,
            "account_id": e.account_id,
            "timezone": e.timezone,
            "active": True,
            "erased": False,
            "login_count": 0,
            "created_at": e.timestamp,
            "created_position": p.position_now,
        },
        e.originator_id,
    )
    w.execute(
        _INSERT_ACTIVITY,
        {"user_id": e.originator_id, "active_from": e.timestamp},
        e.originator_id,
    )
    p.remember_account(e.originator_id, e.account_id)


@handles(User.UserUpdated)
def _user_updated(p: Projector, w: PageWriter, e: Event) -> None:
    values: dict[str, Any] = {}
    if e.email is not None:
        values.update(email=e.email, email_key=_email_key(p, e.email))
    if e.username is not None:
        values["username"] = e.username
    if e.timezone is not None:
        values["timezone"] = e.timezone
    w.connection().execute(update(t.users).where(_u.id == e.originator_id).values(**values))


@handles(User.UserMoved)
def _user_moved(p: Projector, w: PageWriter, e: Event) -> None:
    w.execute(_MOVE_USER, {"b_id": e.originator_id, "b_account": e.account_id}, e.originator_id)
    w.execute(
        _INSERT_USER_MOVE,
        {
            "position": p.position_now,
            "user_id": e.originator_id,
            "from_account_id": e.from_account_id,
            "account_id": e.account_id,
            "moved_at": e.timestamp,
        },
    )
    p.remember_account(e.originator_id, e.account_id)


@handles(User.RoleGranted)
def _role_granted(p: Projector, w: PageWriter, e: Event) -> None:
    w.execute(
        _INSERT_ROLE_GRANT,
        {
            "user_id": e.originator_id,
            "role": e.role,
            "granted_at": e.timestamp,
            "ends_at": e.until,
        },
        (e.originator_id, e.role),
    )


@handles(User.RoleRevoked)
def _role_revoked(p: Projector, w: PageWriter, e: Event) -> None:
    w.execute(
        _REVOKE_ROLE,
        {"b_id": e.originator_id, "b_role": e.role, "b_at": e.timestamp},
        (e.originator_id, e.role),
    )


@handles(User.RoleExpired)
def _role_expired(p: Projector, w: PageWriter, e: Event) -> None:
    # the grant ended at its fixed end, not when the expiry was recorded
    w.execute(
        _REVOKE_ROLE,
        {"b_id": e.originator_id, "b_role": e.role, "b_at": e.at},
        (e.originator_id, e.role),
    )


@handles(User.RoleGrantExtended)
def _role_grant_extended(p: Projector, w: PageWriter, e: Event) -> None:
    w.execute(
        _MOVE_ROLE_END,
        {"b_id": e.originator_id, "b_role": e.role, "b_at": e.until},
        (e.originator_id, e.role),
    )


@handles(User.UserDeactivated)
def _user_deactivated(p: Projector, w: PageWriter, e: Event) -> None:
    w.execute(_SET_ACTIVE, {"b_id": e.originator_id, "b_active": False}, e.originator_id)
    w.execute(_CLOSE_ACTIVITY, {"b_id": e.originator_id, "b_at": e.timestamp}, e.originator_id)


@handles(User.UserReactivated)
def _user_reactivated(p: Projector, w: PageWriter, e: Event) -> None:
    w.execute(_SET_ACTIVE, {"b_id": e.originator_id, "b_active": True}, e.originator_id)
    w.execute(
        _INSERT_ACTIVITY,
        {"user_id": e.originator_id, "active_from": e.timestamp},
        e.originator_id,
    )


@handles(User.LoginRecorded)
def _login_recorded(p: Projector, w: PageWriter, e: Event) -> None:
    w.execute(_INSERT_LOGIN, {"position": p.position_now, "user_id": e.originator_id, "at": e.at})
    w.execute(_COUNT_LOGIN, {"b_id": e.originator_id, "b_at": e.at}, e.originator_id)


@handles(User.LastSeenRecorded)
def _last_seen_recorded(p: Projector, w: PageWriter, e: Event) -> None:
    w.execute(_SEEN, {"b_id": e.originator_id, "b_at": e.at}, e.originator_id)


@handles(User.UserErased)
def _user_erased(p: Projector, w: PageWriter, e: Event) -> None:
    p.flush(w)  # the rows to blank may still be queued
    conn = w.connection()
    if p.in_bulk:  # found by this index, which a bulk load leaves out until its end
        conn.execute(CreateIndex(_AUDIT_BY_AGGREGATE, if_not_exists=True))
    # Sealed, the data is already unreadable (its key is gone); blanked all the same, so that
    # the read models say so at once, and equal a replay made after the erasure.
    conn.execute(
        update(t.users)
        .where(_u.id == e.originator_id)
        .values(email=ERASED, email_key=None, username=ERASED, erased=True)
    )
    log = t.audit_log.c
    mentions = select(t.personal_mentions.c.position).where(
        t.personal_mentions.c.user_id == e.originator_id
    )
    rows = conn.execute(
        select(log.position, log.event, log.fields).where(
            or_(log.aggregate_id == e.originator_id, log.position.in_(mentions)),
            log.event.in_(PERSONAL_FIELDS),
        )
    ).all()
    for position, name, fields in rows:
        fields = dict(fields)
        for field in PERSONAL_FIELDS[name]:
            if fields.get(field) is not None:
                fields[field] = ERASED
        conn.execute(update(t.audit_log).where(log.position == position).values(fields=fields))


# -- mirrored sources ---------------------------------------------------------------------------

_INSERT_MENTION = insert(t.personal_mentions)


@handles(ExternalSource.UnrecognisedEntryRecorded)
def _unrecognised_entry_recorded(p: Projector, w: PageWriter, e: Event) -> None:
    if e.affected_user_id is not None:
        w.execute(_INSERT_MENTION, {"position": p.position_now, "user_id": e.affected_user_id})
