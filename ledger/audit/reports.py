"""Compliance reports as pandas DataFrames, from the read models (each an indexed query)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, Final
from uuid import UUID

import pandas as pd
from sqlalchemy import func, select

from ledger import access_policy
from ledger.domain import AccessDenial, Account, User, titles
from ledger.validation import Moment, optional, valid
from projections import ReadModel, held
from projections import tables as t

PRIVILEGED_ROLES: Final = ("admin", "admin-reader", "account-admin", "consultant")
_ROLE_CHANGES: Final = titles.by_name(
    {
        User.RoleGranted: "granted",
        User.RoleRevoked: "revoked",
        User.RoleGrantExtended: "end moved",
        User.RoleExpired: "expired",
        Account.AccountRoleGranted: "granted",
        Account.AccountRoleRevoked: "revoked",
        Account.AccountRoleGrantExtended: "end moved",
        Account.AccountRoleExpired: "expired",
    }
)
_JOINERS_MOVERS_LEAVERS: Final = titles.by_name(
    {
        User.UserCreated: "joiner",
        User.UserDeactivated: "leaver",
        User.UserReactivated: "mover",
        User.RoleGranted: "mover",
        User.RoleRevoked: "mover",
        User.RoleGrantExtended: "mover",
        User.RoleExpired: "mover",
        User.UserUpdated: "mover",
        User.UserMoved: "mover",
        User.UserErased: "leaver",
    }
)
REPORTS: Final = (
    "access-review",
    "role-changes",
    "joiners-movers-leavers",
    "dormant",
    "privileged",
    "failed-logins",
    "sod-violations",
    "denied",
)


def _at(value: Any, what: str = "at") -> datetime:
    return optional(Moment, value, what) or datetime.now(UTC)  # type: ignore[no-any-return]


def days_before(moment: datetime, days: int) -> datetime:
    """`days` days before `moment`; the earliest instant there is when that is before year 1."""
    try:
        return moment - timedelta(days=days)
    except OverflowError:
        return datetime.min.replace(tzinfo=UTC)


def _accounts(rm: ReadModel) -> dict[UUID, str]:
    with rm.engine.connect() as conn:
        return dict(conn.execute(select(t.accounts.c.id, t.accounts.c.name)).all())


@dataclass(frozen=True)
class _Person:
    id: UUID
    email: str
    username: str
    account: str | None
    account_id: UUID
    created_at: datetime
    active: bool
    held: list[str]
    last_login_at: datetime | None


def _accounts_before_moves(conn: Any, moment: datetime) -> dict[UUID, UUID]:
    """The account at `moment` of each user moved since: the one their first move after
    `moment` moved them from (a user not in it is in their account of now)."""
    moves = t.user_moves.c
    account_then: dict[UUID, UUID] = {}
    for user_id, from_account_id in conn.execute(
        select(moves.user_id, moves.from_account_id)
        .where(moves.moved_at > moment)
        .order_by(moves.position.desc())
    ):
        account_then[user_id] = from_account_id
    return account_then


def _people(rm: ReadModel, moment: datetime) -> list[_Person]:
    """Every user that existed at `moment`, as they stood then."""
    u, g, a, lg = t.users.c, t.role_grants.c, t.user_activity.c, t.logins.c
    with rm.engine.connect() as conn:
        people = conn.execute(
            select(u.id, u.email, u.username, u.account_id, u.created_at)
            .where(u.created_at <= moment)
            .order_by(u.created_position)
        ).all()
        active = set(conn.execute(select(a.user_id).where(held.ACTIVITY.covers(moment))).scalars())
        roles: dict[UUID, list[str]] = defaultdict(list)
        for user_id, role in conn.execute(
            select(g.user_id, g.role).where(held.ROLE_GRANTS.covers(moment)).order_by(g.role)
        ):
            roles[user_id].append(role)
        last_login = dict(
            conn.execute(
                select(lg.user_id, func.max(lg.at)).where(lg.at <= moment).group_by(lg.user_id)
            ).all()
        )
        account_then = _accounts_before_moves(conn, moment)
    names = _accounts(rm)
    rm.personal.prepare(p.email for p in people)
    return [
        _Person(
            p.id,
            rm.personal.reveal(p.email, p.id, "email"),
            rm.personal.reveal(p.username, p.id, "username"),
            names.get(account_then.get(p.id, p.account_id)),
            account_then.get(p.id, p.account_id),
            _utc(p.created_at) or moment,
            p.id in active,
            roles[p.id],
            _utc(last_login.get(p.id)),
        )
        for p in people
    ]


def access_review(rm: ReadModel, at: Any = None) -> pd.DataFrame:
    """Every user that existed at `at`: account, active, effective roles, last login."""
    rows = [
        {
            "user_id": p.id,
            "email": p.email,
            "username": p.username,
            "account": p.account,
            "account_id": p.account_id,
            "active": p.active,
            "roles": ";".join(p.held) if p.active else "",
            "roles_held": ";".join(p.held),
            "last_login_at": p.last_login_at,
        }
        for p in _people(rm, _at(at))
    ]
    return _frame(
        rows,
        [
            "user_id",
            "email",
            "username",
            "account",
            "account_id",
            "active",
            "roles",
            "roles_held",
            "last_login_at",
        ],
    )


def role_changes(rm: ReadModel, since: Any, until: Any = None) -> pd.DataFrame:
    """Every role granted, revoked, expired or given a new end in [since, until): to whom, by
    whom, why; `ends_at`: the end fixed in advance (or the end an expiry recorded)."""
    found, names = _events_between(rm, tuple(_ROLE_CHANGES), since, until)
    rows = [
        {
            "timestamp": row.timestamp,
            "subject_type": "user" if row.aggregate_type == "User" else "account",
            "subject_id": row.aggregate_id,
            "subject": row.email if row.aggregate_type == "User" else names.get(row.aggregate_id),
            "account": names.get(row.account_id),
            "role": dict(row.fields).get("role"),
            "change": _ROLE_CHANGES[row.event],
            "ends_at": _ends_at(dict(row.fields)),
            "actor": row.actor,
            "reason": row.reason,
            "command_id": row.command_id,
            "position": row.position,
        }
        for row in found
    ]
    return _frame(
        rows,
        [
            "timestamp",
            "subject_type",
            "subject_id",
            "subject",
            "account",
            "role",
            "change",
            "ends_at",
            "actor",
            "reason",
            "command_id",
            "position",
        ],
    )


def _ends_at(fields: dict[str, Any]) -> datetime | None:
    end = fields.get("until") or fields.get("at")
    return None if end is None else datetime.fromisoformat(end)


def joiners_movers_leavers(rm: ReadModel, since: Any, until: Any = None) -> pd.DataFrame:
    """Who joined (created), moved (roles, identity or account changed, reactivated) or left
    (deactivated) in [since, until)."""
    found, names = _events_between(rm, tuple(_JOINERS_MOVERS_LEAVERS), since, until)
    rows = [
        {
            "timestamp": row.timestamp,
            "kind": _JOINERS_MOVERS_LEAVERS[row.event],
            "event": row.event,
            "user_id": row.aggregate_id,
            "email": row.email,
            "account": names.get(row.account_id),
            "detail": titles.detail(row.event, row.fields),
            "actor": row.actor,
            "reason": row.reason,
            "position": row.position,
        }
        for row in found
    ]
    return _frame(
        rows,
        [
            "timestamp",
            "kind",
            "event",
            "user_id",
            "email",
            "account",
            "detail",
            "actor",
            "reason",
            "position",
        ],
    )


def failed_logins(rm: ReadModel, since: Any, until: Any = None) -> pd.DataFrame:
    """Every failed login recorded in [since, until) against a known user: whose, why, from
    which address. Attempts on unknown emails are not events (the server log counts them)."""
    found, names = _events_between(rm, titles.names(User.LoginFailed), since, until)
    rows = []
    for row in found:
        fields = dict(row.fields or {})
        rows.append(
            {
                "timestamp": row.timestamp,
                "user_id": row.aggregate_id,
                "email": row.email,
                "account": names.get(row.account_id),
                "reason_kind": fields.get("reason_kind"),
                "ip": fields.get("ip"),
                "actor": row.actor,
                "position": row.position,
            }
        )
    return _frame(
        rows,
        ["timestamp", "user_id", "email", "account", "reason_kind", "ip", "actor", "position"],
    )


def denied(rm: ReadModel, since: Any, until: Any = None) -> pd.DataFrame:
    """Every command refused in [since, until) to a user it was given `as_user` (the
    security journal's AccessDenied entries): who, as which actor, what, on what, by which
    rule, when. The acting user's email as the read models hold it ([erased] once erased)."""
    found, _ = _events_between(rm, titles.names(AccessDenial.AccessDenied), since, until)
    emails: dict[str, str | None] = {}
    rows = []
    for row in found:
        fields = dict(row.fields or {})
        as_user = str(fields.get("as_user"))
        if as_user not in emails:
            user = rm.get_user(as_user)
            emails[as_user] = None if user is None else user.email
        rule = str(fields.get("rule"))
        rows.append(
            {
                "timestamp": row.timestamp,
                "as_user": as_user,
                "as_user_email": emails[as_user],
                "actor": row.actor,
                "command": fields.get("command"),
                "targets": " ".join(fields.get("targets") or ()),
                "rule": rule,
                "why": access_policy.RULES.get(rule, ""),
                "reason": row.reason,
                "command_id": row.command_id,
                "position": row.position,
            }
        )
    return _frame(
        rows,
        [
            "timestamp",
            "as_user",
            "as_user_email",
            "actor",
            "command",
            "targets",
            "rule",
            "why",
            "reason",
            "command_id",
            "position",
        ],
    )


def _events_between(
    rm: ReadModel, events: tuple[str, ...], since: Any, until: Any
) -> tuple[list[Any], dict[UUID, str]]:
    """Audit-log rows of these events in [since, until), oldest first, each with the email of
    its user (None for other aggregates); and the account names by id."""
    start, end = valid(Moment, since, "since"), _at(until, "until")
    log = t.audit_log.c
    query = (
        select(t.audit_log, t.users.c.email)
        .outerjoin(t.users, t.users.c.id == log.aggregate_id)
        .where(log.event.in_(events), log.timestamp >= start, log.timestamp < end)
        .order_by(log.position)
    )
    with rm.engine.connect() as conn:
        rows = conn.execute(query).all()
    rm.personal.prepare(
        value for row in rows for value in (row.email, *(row.fields or {}).values())
    )
    return [
        SimpleNamespace(
            **{
                **row._asdict(),
                "email": _email(rm, row.email, row.aggregate_id),
                "fields": rm.personal.reveal_fields(row.event, row.aggregate_id, row.fields or {}),
            }
        )
        for row in rows
    ], _accounts(rm)


def _email(rm: ReadModel, stored: str | None, user_id: UUID) -> str | None:
    """A user's email as the read models hold it, opened (None for no user)."""
    return None if stored is None else rm.personal.reveal(stored, user_id, "email")


def dormant_users(rm: ReadModel, days: int = 90, at: Any = None) -> pd.DataFrame:
    """Users active at `at` who have not logged in for `days` days (or never, since joining
    more than `days` days before)."""
    moment = _at(at)
    cutoff = days_before(moment, days)
    rows = [
        {
            "user_id": p.id,
            "email": p.email,
            "account": p.account,
            "roles": ";".join(p.held),
            "last_login_at": p.last_login_at,
            "days_idle": (moment - (p.last_login_at or p.created_at)).days,
        }
        for p in _people(rm, moment)
        if p.active and (p.last_login_at or p.created_at) <= cutoff
    ]
    return _frame(rows, ["user_id", "email", "account", "roles", "last_login_at", "days_idle"])


def privileged_holders(
    rm: ReadModel, at: Any = None, roles: tuple[str, ...] = PRIVILEGED_ROLES
) -> pd.DataFrame:
    """Effective holders of the privileged roles at `at`, with the time they got the role."""
    moment = _at(at)
    g, u = t.role_grants.c, t.users.c
    names = _accounts(rm)
    with rm.engine.connect() as conn:
        found = conn.execute(
            select(g.role, g.user_id, g.granted_at, u.email, u.account_id)
            .join(t.users, u.id == g.user_id)
            .where(g.role.in_(roles), held.ROLE_GRANTS.covers(moment))
            .where(held.active(g.user_id, moment))
        ).all()
        account_then = _accounts_before_moves(conn, moment)
    rm.personal.prepare(r.email for r in found)
    rows = [
        {
            "role": r.role,
            "user_id": r.user_id,
            "email": _email(rm, r.email, r.user_id),
            "account": names.get(account_then.get(r.user_id, r.account_id)),
            "since": _utc(r.granted_at),
        }
        for r in found
    ]
    rows.sort(key=lambda r: (r["role"], r["email"]))
    return _frame(rows, ["role", "user_id", "email", "account", "since"])


def privileged_timeline(
    rm: ReadModel, since: Any, until: Any = None, roles: tuple[str, ...] = PRIVILEGED_ROLES
) -> pd.DataFrame:
    """Intervals in which each user effectively held each privileged role, clipped to
    [since, until): the data of the report's timeline chart."""
    start, end = valid(Moment, since, "since"), _at(until, "until")
    g, a, u = t.role_grants.c, t.user_activity.c, t.users.c
    with rm.engine.connect() as conn:
        grants = conn.execute(
            select(g.user_id, g.role, *held.ROLE_GRANTS.columns(), u.email)
            .join(t.users, u.id == g.user_id)
            .where(g.role.in_(roles), held.ROLE_GRANTS.meets(start, end))
        ).all()
        rm.personal.prepare(row.email for row in grants)
        user_ids = list({row.user_id for row in grants})
        activity: dict[UUID, list[tuple[datetime, datetime | None]]] = defaultdict(list)
        for row in conn.execute(
            select(a.user_id, *held.ACTIVITY.columns()).where(a.user_id.in_(user_ids))
        ):
            activity[row.user_id].append(held.ACTIVITY.bounds(row))
    rows = []
    for grant in grants:
        for active in activity[grant.user_id]:
            both = held.common(held.ROLE_GRANTS.bounds(grant), active, (start, end))
            if both is not None:
                begin, finish = both
                rows.append(
                    {
                        "email": _email(rm, grant.email, grant.user_id),
                        "user_id": grant.user_id,
                        "role": grant.role,
                        "start": _utc(begin),
                        "end": _utc(finish),
                    }
                )
    rows.sort(key=lambda r: (r["email"], r["role"], r["start"]))
    return _frame(rows, ["email", "user_id", "role", "start", "end"])


def sod_violations(rm: ReadModel, at: Any = None) -> pd.DataFrame:
    """Every user (or account) that holds both roles of a separation-of-duties rule in force
    at `at`, however the two grants came about (before the rule, or as an approved exception,
    shown with its approver and reason); `active`: whether a user was active then."""
    moment = _at(at)
    rules, grants, log = t.sod_rules.c, t.role_grants, t.audit_log.c
    names = _accounts(rm)
    rows: list[dict[str, Any]] = []
    with rm.engine.connect() as conn:
        in_force = conn.execute(
            select(rules.name, rules.scope, rules.first_role, rules.second_role)
            .where(held.SOD_RULES.covers(moment))
            .order_by(rules.name)
        ).all()
        # (holder, rule) -> [(when, approver, reason)]: an approval covers only the conflict
        # that began with its grant, never a later one after a revocation
        approvals: dict[tuple[Any, Any], list[tuple[Any, Any, Any]]] = {}
        for approval in conn.execute(
            select(log.aggregate_id, log.fields, log.reason, log.timestamp)
            .where(
                log.event.in_(
                    titles.names(User.SodExceptionApproved, Account.AccountSodExceptionApproved)
                ),
                log.timestamp <= moment,
            )
            .order_by(log.position)
        ):
            fields = dict(approval.fields)
            approvals.setdefault((approval.aggregate_id, fields.get("rule")), []).append(
                (_utc(approval.timestamp), fields.get("approved_by"), approval.reason)
            )
        for rule in in_force:
            user_scope = rule.scope == "user"
            table, period = (
                (grants, held.ROLE_GRANTS)
                if user_scope
                else (t.account_role_grants, held.ACCOUNT_ROLE_GRANTS)
            )
            holder = table.c.user_id if user_scope else table.c.account_id
            first, second = table.alias("first_grant"), table.alias("second_grant")
            first_holder, second_holder = first.c[holder.name], second.c[holder.name]
            found = conn.execute(
                select(
                    first_holder.label("holder_id"),
                    first.c.granted_at.label("first_since"),
                    second.c.granted_at.label("second_since"),
                )
                .join(second, second_holder == first_holder)
                .where(
                    first.c.role == rule.first_role,
                    second.c.role == rule.second_role,
                    _covering(period, first, moment),
                    _covering(period, second, moment),
                )
                .order_by(first_holder)
            ).all()
            people = (
                _emails(rm, conn, [row.holder_id for row in found], moment) if user_scope else {}
            )
            active = (
                set(
                    conn.execute(
                        select(t.user_activity.c.user_id).where(held.ACTIVITY.covers(moment))
                    ).scalars()
                )
                if user_scope
                else set()
            )
            for row in found:
                since = _utc(max(row.first_since, row.second_since))
                approved_by, why = next(
                    (
                        (approver, reason)
                        for when, approver, reason in reversed(
                            approvals.get((row.holder_id, rule.name), [])
                        )
                        if when >= since
                    ),
                    (None, None),
                )
                email, account_id = people.get(row.holder_id, ("", row.holder_id))
                rows.append(
                    {
                        "rule": rule.name,
                        "scope": rule.scope,
                        "roles": f"{rule.first_role};{rule.second_role}",
                        "holder_id": row.holder_id,
                        "holder": email if user_scope else names.get(row.holder_id),
                        "account": names.get(account_id if user_scope else row.holder_id),
                        "active": row.holder_id in active if user_scope else True,
                        "since": since,
                        "exception_approved_by": approved_by,
                        "exception_reason": why,
                    }
                )
    rows.sort(key=lambda row: (row["rule"], row["holder"] or "", str(row["holder_id"])))
    return _frame(
        rows,
        [
            "rule",
            "scope",
            "roles",
            "holder_id",
            "holder",
            "account",
            "active",
            "since",
            "exception_approved_by",
            "exception_reason",
        ],
    )


def _covering(period: held.Period, alias: Any, moment: datetime) -> Any:
    """`period.covers(moment)` on an alias of its table."""
    columns = [
        period.start,
        period.end,
        *([period.fixed_end] if period.fixed_end is not None else []),
    ]
    aliased = held.Period(*(alias.c[column.name] for column in columns))
    return aliased.covers(moment)


def _emails(
    rm: ReadModel, conn: Any, user_ids: list[UUID], moment: datetime
) -> dict[UUID, tuple[str, UUID]]:
    """Each user's email (opened) and account id at `moment`."""
    u = t.users.c
    found = conn.execute(select(u.id, u.email, u.account_id).where(u.id.in_(user_ids))).all()
    account_then = _accounts_before_moves(conn, moment)
    rm.personal.prepare(row.email for row in found)
    return {
        row.id: (_email(rm, row.email, row.id) or "", account_then.get(row.id, row.account_id))
        for row in found
    }


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _frame(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns)
