"""Each event of the audit log as a described change: what changed, from what to what, on whom,
by whom. Old values come from the same aggregates' earlier events, so every description says
what the log held at that position (a user is named by their username then, an account by its
name then; an erased user's personal data reads as erased)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from sqlalchemy import ColumnElement, Connection, Row, or_, select

from ledger.domain import Account, AccountRole, Role, User, titles
from projections import tables as t
from projections.queries import Queries

SHOWN_LENGTH: Final = 100  # characters of a value a description shows (annotation contents)

_STATE_EVENTS: Final = titles.names(
    User.UserCreated,
    User.UserUpdated,
    User.UserMoved,
    Account.AccountCreated,
    Account.AccountUpdated,
    Account.ConsultancySet,
)
_LABELS: Final = {
    "email": "email",
    "username": "username",
    "timezone": "timezone",
    "name": "name",
    "primary_color": "primary color",
    "secondary_color": "secondary color",
    "logo_url": "logo URL",
    "consultancy_account_id": "consultancy",
}


@dataclass(frozen=True)
class Change:
    """One domain event of the log, described. `account_id`: the account, or the user's."""

    position: int
    timestamp: datetime
    aggregate_id: UUID
    aggregate_type: str
    account_id: UUID | None
    event: str
    description: str
    actor: str
    reason: str | None


def history(
    rm: Queries, *, aggregate_id: UUID | None = None, account_id: UUID | None = None
) -> list[Change]:
    """The changes of one aggregate, or of an account and its users, oldest first."""
    log = t.audit_log.c
    condition = log.aggregate_id == aggregate_id if aggregate_id else log.account_id == account_id
    with rm.engine.connect() as conn:
        return _described(rm, conn, _rows(conn, condition))


def changes_after(
    rm: Queries,
    after: int,
    *,
    through: int,
    limit: int,
    accounts: frozenset[UUID] | None,
    user_id: UUID | None = None,
) -> list[Change]:
    """At most `limit` changes at positions in (after, through], in log order: of every
    aggregate when `accounts` is None, else only those of these accounts (their own events and
    their users') and of the user `user_id`."""
    log = t.audit_log.c
    conditions: list[ColumnElement[bool]] = [log.position > after, log.position <= through]
    if accounts is not None:
        conditions.append(or_(log.account_id.in_(sorted(accounts)), log.aggregate_id == user_id))
    with rm.engine.connect() as conn:
        return _described(rm, conn, _rows(conn, *conditions, limit=limit))


def _rows(
    conn: Connection, *conditions: ColumnElement[bool], limit: int | None = None
) -> list[Any]:
    query = select(t.audit_log).where(*conditions).order_by(t.audit_log.c.position).limit(limit)
    return list(conn.execute(query).all())


def _described(rm: Queries, conn: Connection, rows: Sequence[Row[Any]]) -> list[Change]:
    """The rows described, each against the state its aggregates had just before it."""
    if not rows:
        return []
    referenced = {row.aggregate_id for row in rows}
    for row in rows:
        referenced.update(_references(row.fields))
    if row_account_ids := {row.account_id for row in rows if row.account_id is not None}:
        referenced.update(row_account_ids)
    log = t.audit_log.c
    earlier = conn.execute(
        select(t.audit_log)
        .where(
            log.aggregate_id.in_(sorted(referenced)),
            log.event.in_(_STATE_EVENTS),
            log.position <= rows[-1].position,
        )
        .order_by(log.position)
    ).all()
    described = {row.position for row in rows}
    everything = sorted(
        [*rows, *(row for row in earlier if row.position not in described)],
        key=lambda row: row.position,
    )
    rm.personal.prepare(value for row in everything for value in dict(row.fields).values())
    state: dict[UUID, dict[str, Any]] = {}
    changes = []
    for row in everything:
        fields = rm.personal.reveal_fields(row.event, row.aggregate_id, dict(row.fields))
        if row.position in described:
            changes.append(
                Change(
                    position=row.position,
                    timestamp=row.timestamp,
                    aggregate_id=row.aggregate_id,
                    aggregate_type=row.aggregate_type,
                    account_id=row.account_id,
                    event=row.event,
                    description=_Describer(state, row.aggregate_id).describe(row.event, fields),
                    actor=row.actor,
                    reason=row.reason,
                )
            )
        _fold(state.setdefault(row.aggregate_id, {}), row.event, fields)
    return changes


def _references(fields: Mapping[str, Any]) -> set[UUID]:
    """Another aggregate a description names: a user joining or leaving an account (the
    account a user moved from and a consultancy are named by id: their names are another
    tenant's, which the reader may not read)."""
    found = set()
    for key in ("user_id",):
        if fields.get(key):
            with suppress(ValueError):
                found.add(UUID(str(fields[key])))
    return found


def _fold(current: dict[str, Any], event: str, fields: Mapping[str, Any]) -> None:
    """The aggregate's state after the event (the fields descriptions need)."""
    if event == "AccountUpdated":
        current.update(fields.get("changes") or {})
    elif event == "UserUpdated":
        current.update({k: v for k, v in fields.items() if k in _LABELS and v is not None})
    elif event in _STATE_EVENTS:
        current.update({k: v for k, v in fields.items() if k in _LABELS or k == "account_id"})


@dataclass(frozen=True)
class _Describer:
    """Describes an event of the aggregate `subject`, given every aggregate's state before it."""

    state: Mapping[UUID, Mapping[str, Any]]
    subject: UUID

    @property
    def before(self) -> Mapping[str, Any]:
        return self.state.get(self.subject, {})

    def describe(self, event: str, fields: Mapping[str, Any]) -> str:
        described = _DESCRIPTIONS.get(event)
        if described is None:
            return titles.title(event, fields)
        return described(self, fields)

    def user(self, user_id: Any = None) -> str:
        """A user (by default the subject) by their username at that position."""
        user_id = self.subject if user_id is None else user_id
        username = self._of(user_id).get("username")
        return f"user {username}" if username else f"user {user_id}"

    def account(self, account_id: Any = None, name: Any = None) -> str:
        """An account (by default the subject) by its name at that position, or `name`."""
        account_id = self.subject if account_id is None else account_id
        name = name or self._of(account_id).get("name")
        return f"account {_shown(name)}" if name else f"account {account_id}"

    def changed(self, after: Mapping[str, Any]) -> str:
        """Each field of `after`, from its value before to its value in `after`."""
        return _capitalised(
            ", ".join(
                f"{_LABELS.get(key, key)} changed from {_shown(self.before.get(key))} "
                f"to {_shown(value)}"
                for key, value in after.items()
            )
        )

    def _of(self, aggregate_id: Any) -> Mapping[str, Any]:
        try:
            key = aggregate_id if isinstance(aggregate_id, UUID) else UUID(str(aggregate_id))
        except ValueError:
            return {}
        return self.state.get(key, {})


def _shown(value: Any) -> str:
    """A value in a description: quoted, cut short; None as None (as FlexMeasures shows it)."""
    if value is None:
        return "None"
    text = str(value)
    if len(text) > SHOWN_LENGTH:
        text = text[: SHOWN_LENGTH - 1] + "…"
    return f"'{text}'"


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


Describe = Callable[[_Describer, Mapping[str, Any]], str]


def _user_updated(d: _Describer, fields: Mapping[str, Any]) -> str:
    given = {k: v for k, v in fields.items() if k in _LABELS and v is not None}
    username = fields.get("username") or d.before.get("username")
    return f"{d.changed(given)} for user {username}"


def _account_updated(d: _Describer, fields: Mapping[str, Any]) -> str:
    changes = dict(fields.get("changes") or {})
    return f"{d.changed(changes)} for {d.account(name=changes.get('name'))}"


def _consultancy_set(d: _Describer, fields: Mapping[str, Any]) -> str:
    consultancy = fields.get("consultancy_account_id")
    return f"{d.changed({'consultancy_account_id': consultancy})} for {d.account()}"


def _user_created(d: _Describer, fields: Mapping[str, Any]) -> str:
    return f"User {fields.get('username')} created in {d.account(fields.get('account_id'))}"


def _account_created(d: _Describer, fields: Mapping[str, Any]) -> str:
    return f"Account {_shown(fields.get('name'))} created"


def _user_joined(d: _Describer, fields: Mapping[str, Any]) -> str:
    return f"{_capitalised(d.user(fields.get('user_id')))} joined {d.account()}"


def _user_left(d: _Describer, fields: Mapping[str, Any]) -> str:
    return f"{_capitalised(d.user(fields.get('user_id')))} left {d.account()}"


def _user_moved(d: _Describer, fields: Mapping[str, Any]) -> str:
    return (
        f"{_capitalised(d.user())} moved from account {fields.get('from_account_id')} "
        f"to {d.account(fields.get('account_id'))}"
    )


def _granted(template: str) -> Describe:
    """A grant, with its end when one was fixed in advance."""
    said = _said(template)

    def describe(d: _Describer, fields: Mapping[str, Any]) -> str:
        until = fields.get("until")
        return said(d, fields) + ("" if until is None else f" until {_shown(until)}")

    return describe


def _said(template: str) -> Describe:
    """A description filled from the event's fields, `{user}` or `{account}` being the
    aggregate the event happened to."""

    def describe(d: _Describer, fields: Mapping[str, Any]) -> str:
        values = defaultdict(lambda: "None", {k: _shown(v) for k, v in fields.items()})
        values.update(user=d.user(), account=d.account())
        return _capitalised(template.format_map(values))

    return describe


_DESCRIPTIONS: Final[Mapping[str, Describe]] = titles.by_name(
    {
        Role.RoleDefined: _said("Role {name} defined"),
        AccountRole.AccountRoleDefined: _said("Account role {name} defined"),
        Role.RoleDescribed: _said("Description of role {name} changed to {description}"),
        AccountRole.AccountRoleDescribed: _said(
            "Description of account role {name} changed to {description}"
        ),
        Account.AccountCreated: _account_created,
        Account.AccountUpdated: _account_updated,
        Account.ConsultancySet: _consultancy_set,
        Account.AccountRoleGranted: _granted("Account role {role} added to {account}"),
        Account.AccountRoleExpired: _said("Account role {role} of {account} expired at {at}"),
        Account.AccountRoleGrantExtended: _said(
            "Account role {role} of {account} now ends at {until}"
        ),
        Account.AccountSodExceptionApproved: _said(
            "Account role {role} granted to {account} as an exception to separation-of-duties"
            " rule {rule}, approved by {approved_by}"
        ),
        Account.AccountRoleRevoked: _said("Account role {role} removed from {account}"),
        Account.UserJoined: _user_joined,
        Account.UserLeft: _user_left,
        Account.AnnotationAdded: _said("Annotation {content} ({type}) added to {account}"),
        Account.AnnotationRemoved: _said("Annotation {annotation_id} removed from {account}"),
        Account.AccountClosed: _said("{account} closed"),
        User.UserCreated: _user_created,
        User.UserUpdated: _user_updated,
        User.UserMoved: _user_moved,
        User.RoleGranted: _granted("Role {role} added to {user}"),
        User.RoleExpired: _said("Role {role} of {user} expired at {at}"),
        User.RoleGrantExtended: _said("Role {role} of {user} now ends at {until}"),
        User.SodExceptionApproved: _said(
            "Role {role} granted to {user} as an exception to separation-of-duties rule {rule},"
            " approved by {approved_by}"
        ),
        User.RoleRevoked: _said("Role {role} removed from {user}"),
        User.UserDeactivated: _said("Active status changed from 'True' to 'False' for {user}"),
        User.UserReactivated: _said("Active status changed from 'False' to 'True' for {user}"),
        User.LoginRecorded: _said("Login recorded for {user}"),
        User.LoginFailed: _said("Login failed for {user} ({reason_kind})"),
        User.LastSeenRecorded: _said("Last seen recorded for {user}"),
        User.PasswordChanged: _said("Password changed for {user}"),
        User.UserErased: _said("Personal data erased for {user}"),
    }
)


def described_events() -> Iterable[str]:
    """The events that have a description of their own (the others show their title)."""
    return _DESCRIPTIONS.keys()
