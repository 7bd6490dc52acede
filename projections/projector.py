"""The projector: reads the notification log in pages and writes each page's read-model rows
together with its tracking position in ONE transaction, so a crash at any instant neither
loses nor double-applies an event."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from sqlalchemy import Connection, Engine, and_, insert, select, update

from ledger.application import Ledger
from ledger.domain import ERASED, Account, AccountRole, Role, User
from projections import tables as t

TRACKING_NAME: Final = "read_models"
_METADATA: Final = frozenset(
    {
        "originator_id",
        "originator_version",
        "originator_topic",
        "timestamp",
        "actor",
        "reason",
        "command_id",
    }
)
Event = Any  # a decoded domain event of the ledger
Handler = Callable[["Projector", Connection, Event], None]
_HANDLERS: dict[type[Any], Handler] = {}


def handles(*event_classes: type[Any]) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        for event_class in event_classes:
            _HANDLERS[event_class] = handler
        return handler

    return register


def plain(value: Any) -> Any:
    """A JSON-friendly copy of an event field."""
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set):
        return [plain(item) for item in value]
    return value


def event_fields(event: Event) -> dict[str, Any]:
    return {k: plain(v) for k, v in vars(event).items() if k not in _METADATA}


def aggregate_type(event: Event) -> str:
    return type(event).__qualname__.split(".")[0]


class Projector:
    def __init__(self, ledger: Ledger, engine: Engine, *, page_size: int = 1000) -> None:
        self.ledger = ledger
        self.engine = engine
        self.page_size = page_size
        self._account_of_user: dict[UUID, UUID] = {}
        self.position_now = 0  # the position of the event being applied

    def position(self, conn: Connection, *, lock: bool = False) -> int:
        query = select(t.projection_tracking.c.position).where(
            t.projection_tracking.c.name == TRACKING_NAME
        )
        if lock:
            query = query.with_for_update()
        found = conn.execute(query).scalar_one_or_none()
        if found is None:
            if lock:
                conn.execute(insert(t.projection_tracking).values(name=TRACKING_NAME, position=0))
            return 0
        return int(found)

    def catch_up(self, *, until: datetime | None = None, stop: int | None = None) -> int:
        """Project every event recorded so far, a page per transaction; return how many.

        `until` leaves out events recorded after that instant (for point-in-time replays);
        `stop` reads no further than that position.
        """
        projected = 0
        while True:
            read, applied = self.project_page(until=until, stop=stop)
            if not read:
                return projected
            projected += applied

    def project_page(
        self, *, until: datetime | None = None, stop: int | None = None
    ) -> tuple[int, int]:
        """Project the next page of events and advance the position, in one transaction;
        return how many events were read and how many applied."""
        applied = 0
        with self.engine.begin() as conn:
            start = self.position(conn, lock=True) + 1
            if stop is not None and start > stop:
                return 0, 0
            notifications = self.ledger.recorder.select_notifications(
                start=start, limit=self.page_size, stop=stop
            )
            for notification in notifications:
                event: Event = self.ledger.mapper.to_domain_event(notification)
                if until is None or event.timestamp <= until:
                    self.apply(conn, notification.id, event)
                    applied += 1
            if notifications:
                conn.execute(
                    update(t.projection_tracking)
                    .where(t.projection_tracking.c.name == TRACKING_NAME)
                    .values(position=notifications[-1].id)
                )
        return len(notifications), applied

    def apply(self, conn: Connection, position: int, event: Event) -> None:
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            self.position_now = position
            handler(self, conn, event)
        self._log(conn, position, event)

    def _log(self, conn: Connection, position: int, event: Event) -> None:
        kind = aggregate_type(event)
        account_id = None
        if kind == "Account":
            account_id = event.originator_id
        elif kind == "User":
            account_id = self.account_of(conn, event.originator_id)
        conn.execute(
            insert(t.audit_log).values(
                position=position,
                timestamp=event.timestamp,
                aggregate_id=event.originator_id,
                aggregate_type=kind,
                account_id=account_id,
                event=type(event).__name__,
                actor=event.actor,
                reason=event.reason,
                command_id=event.command_id,
                fields=event_fields(event),
            )
        )

    def remember_account(self, user_id: UUID, account_id: UUID) -> None:
        self._account_of_user[user_id] = account_id

    def account_of(self, conn: Connection, user_id: UUID) -> UUID | None:
        account_id = self._account_of_user.get(user_id)
        if account_id is None:
            account_id = conn.execute(
                select(t.users.c.account_id).where(t.users.c.id == user_id)
            ).scalar_one_or_none()
            if account_id is not None:
                self._account_of_user[user_id] = account_id
        return account_id


# -- role catalogues ----------------------------------------------------------------------------


@handles(Role.RoleDefined, AccountRole.AccountRoleDefined)
def _role_defined(p: Projector, conn: Connection, e: Event) -> None:
    table = t.roles if isinstance(e, Role.RoleDefined) else t.account_roles
    conn.execute(
        insert(table).values(name=e.name, description=e.description, defined_at=e.timestamp)
    )


# -- accounts -----------------------------------------------------------------------------------


def _account(e: Event) -> Any:
    return t.accounts.c.id == e.originator_id


@handles(Account.AccountCreated)
def _account_created(p: Projector, conn: Connection, e: Event) -> None:
    conn.execute(
        insert(t.accounts).values(
            id=e.originator_id,
            name=e.name,
            primary_color=e.primary_color,
            secondary_color=e.secondary_color,
            logo_url=e.logo_url,
            consultancy_account_id=e.consultancy_account_id,
            closed=False,
            created_at=e.timestamp,
        )
    )


@handles(Account.AccountUpdated)
def _account_updated(p: Projector, conn: Connection, e: Event) -> None:
    conn.execute(update(t.accounts).where(_account(e)).values(**e.changes))


@handles(Account.ConsultancySet)
def _consultancy_set(p: Projector, conn: Connection, e: Event) -> None:
    conn.execute(
        update(t.accounts)
        .where(_account(e))
        .values(consultancy_account_id=e.consultancy_account_id)
    )


@handles(Account.AccountClosed)
def _account_closed(p: Projector, conn: Connection, e: Event) -> None:
    conn.execute(update(t.accounts).where(_account(e)).values(closed=True, closed_at=e.timestamp))


@handles(Account.AccountRoleGranted)
def _account_role_granted(p: Projector, conn: Connection, e: Event) -> None:
    conn.execute(
        insert(t.account_role_grants).values(
            account_id=e.originator_id, role=e.role, granted_at=e.timestamp
        )
    )


@handles(Account.AccountRoleRevoked)
def _account_role_revoked(p: Projector, conn: Connection, e: Event) -> None:
    g = t.account_role_grants.c
    conn.execute(
        update(t.account_role_grants)
        .where(
            and_(
                g.account_id == e.originator_id,
                g.role == e.role,
                g.revoked_at.is_(None),
            )
        )
        .values(revoked_at=e.timestamp)
    )


@handles(Account.AnnotationAdded)
def _annotation_added(p: Projector, conn: Connection, e: Event) -> None:
    conn.execute(
        insert(t.annotations).values(
            id=e.annotation_id,
            account_id=e.originator_id,
            content=e.content,
            start=e.start,
            end=e.end,
            belief_time=e.belief_time,
            source_name=e.source_name,
            source_user_id=e.source_user_id,
            type=e.type,
            added_at=e.timestamp,
        )
    )


@handles(Account.AnnotationRemoved)
def _annotation_removed(p: Projector, conn: Connection, e: Event) -> None:
    conn.execute(
        update(t.annotations)
        .where(t.annotations.c.id == e.annotation_id)
        .values(removed_at=e.timestamp)
    )


# -- users --------------------------------------------------------------------------------------


def _user(e: Event) -> Any:
    return t.users.c.id == e.originator_id


@handles(User.UserCreated)
def _user_created(p: Projector, conn: Connection, e: Event) -> None:
    conn.execute(
        insert(t.users).values(
            id=e.originator_id,
            email=e.email,
            email_key=_email_key(e.email),
            username=e.username,
            account_id=e.account_id,
            timezone=e.timezone,
            active=True,
            erased=False,
            login_count=0,
            created_at=e.timestamp,
            created_position=p.position_now,
        )
    )
    conn.execute(insert(t.user_activity).values(user_id=e.originator_id, active_from=e.timestamp))
    p.remember_account(e.originator_id, e.account_id)


def _email_key(email: str) -> str:
    return "" if email == ERASED else email.casefold()


@handles(User.UserUpdated)
def _user_updated(p: Projector, conn: Connection, e: Event) -> None:
    values: dict[str, Any] = {}
    if e.email is not None:
        values.update(email=e.email, email_key=_email_key(e.email))
    if e.username is not None:
        values["username"] = e.username
    if e.timezone is not None:
        values["timezone"] = e.timezone
    conn.execute(update(t.users).where(_user(e)).values(**values))


@handles(User.RoleGranted)
def _role_granted(p: Projector, conn: Connection, e: Event) -> None:
    conn.execute(
        insert(t.role_grants).values(user_id=e.originator_id, role=e.role, granted_at=e.timestamp)
    )


@handles(User.RoleRevoked)
def _role_revoked(p: Projector, conn: Connection, e: Event) -> None:
    g = t.role_grants.c
    conn.execute(
        update(t.role_grants)
        .where(
            and_(
                g.user_id == e.originator_id,
                g.role == e.role,
                g.revoked_at.is_(None),
            )
        )
        .values(revoked_at=e.timestamp)
    )


@handles(User.UserDeactivated)
def _user_deactivated(p: Projector, conn: Connection, e: Event) -> None:
    conn.execute(update(t.users).where(_user(e)).values(active=False))
    a = t.user_activity.c
    conn.execute(
        update(t.user_activity)
        .where(
            and_(
                a.user_id == e.originator_id,
                a.active_to.is_(None),
            )
        )
        .values(active_to=e.timestamp)
    )


@handles(User.UserReactivated)
def _user_reactivated(p: Projector, conn: Connection, e: Event) -> None:
    conn.execute(update(t.users).where(_user(e)).values(active=True))
    conn.execute(insert(t.user_activity).values(user_id=e.originator_id, active_from=e.timestamp))


@handles(User.LoginRecorded)
def _login_recorded(p: Projector, conn: Connection, e: Event) -> None:
    conn.execute(insert(t.logins).values(position=p.position_now, user_id=e.originator_id, at=e.at))
    u = t.users.c
    conn.execute(update(t.users).where(_user(e)).values(login_count=u.login_count + 1))
    conn.execute(
        update(t.users)
        .where(
            and_(
                _user(e),
                (u.last_login_at.is_(None)) | (u.last_login_at < e.at),
            )
        )
        .values(last_login_at=e.at)
    )


@handles(User.LastSeenRecorded)
def _last_seen_recorded(p: Projector, conn: Connection, e: Event) -> None:
    conn.execute(update(t.users).where(_user(e)).values(last_seen_at=e.at))


@handles(User.UserErased)
def _user_erased(p: Projector, conn: Connection, e: Event) -> None:
    conn.execute(
        update(t.users)
        .where(_user(e))
        .values(email=ERASED, email_key="", username=ERASED, erased=True)
    )
    personal = {
        cls.__name__: cls.personal_fields  # type: ignore[attr-defined]
        for cls in (User.UserCreated, User.UserUpdated, User.LoginRecorded)
    }
    log = t.audit_log.c
    rows = conn.execute(
        select(log.position, log.event, log.fields).where(
            and_(
                log.aggregate_id == e.originator_id,
                log.event.in_(personal),
            )
        )
    ).all()
    for position, name, fields in rows:
        fields = dict(json.loads(fields) if isinstance(fields, str) else fields)
        for field in personal[name]:
            if fields.get(field) is not None:
                fields[field] = ERASED
        conn.execute(update(t.audit_log).where(log.position == position).values(fields=fields))
