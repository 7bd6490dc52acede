"""When a role is held: the one rule behind every question about role grants and a user's
activity, as SQL for the queries, the projector and the reports, and in Python for the reports'
timelines.

A grant, an account's grant and a user's activity are periods: a row starts at its start
(inclusive) and ends at its end (exclusive), or is still open (end NULL). A role is *held* at T
while a grant of it covers T, and *effectively* held while, besides, one of the user's activity
periods covers T: an inactive user holds no roles, as in FlexMeasures. Closing an account needs
no rule of its own: it revokes the account's roles and deactivates its users by events of their
own, which end those rows.

A grant may also end by itself: its end fixed in advance (`until`, the `ends_at` column) ends it
whether or not its expiry has been recorded yet, for every question, now or at any T. A period
ends at the earlier of its two ends. `covers`, `meets` and `bounds` are the only readers of a
period's ends; "now" is the time of the query (`NOW`, bound at each execution).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import BindParameter, Exists, Row, Select, and_, bindparam, exists, or_, select
from sqlalchemy.sql.elements import ColumnElement

import projections.tables as t


def _now() -> datetime:
    return datetime.now(UTC)


NOW: Final[BindParameter[datetime]] = bindparam("now", type_=t.UTCDateTime(), callable_=_now)
"""The time of the query, taken when the statement runs (prepared ones too)."""


@dataclass(frozen=True)
class Period:
    """The bounds of one kind of period row: `start`; `end`, which the event that closes the
    row (a revocation, an expiry, a deactivation) sets; and `fixed_end`, an end known in
    advance (a grant's `until`), if this kind of period has one."""

    start: ColumnElement[datetime]
    end: ColumnElement[datetime]
    fixed_end: ColumnElement[datetime] | None = None

    def open(self) -> ColumnElement[bool]:
        """The rows no event has closed yet: the ones a revocation or a deactivation ends."""
        return self.end.is_(None)

    def _not_ended_by(self, at: Any) -> ColumnElement[bool]:
        if self.fixed_end is None:
            return or_(self.end.is_(None), self.end > at)
        return and_(
            or_(self.end.is_(None), self.end > at),
            or_(self.fixed_end.is_(None), self.fixed_end > at),
        )

    def covers(self, at: Any) -> ColumnElement[bool]:
        """The rows that cover `at` (an instant or a bound parameter; None: now)."""
        if at is None:
            if self.fixed_end is None:
                return self.open()
            return and_(self.open(), or_(self.fixed_end.is_(None), self.fixed_end > NOW))
        return and_(self.start <= at, self._not_ended_by(at))

    def meets(self, since: Any, until: Any) -> ColumnElement[bool]:
        """The rows that overlap [since, until)."""
        return and_(self.start < until, self._not_ended_by(since))

    def columns(self) -> tuple[ColumnElement[datetime], ...]:
        """What to select for `bounds`."""
        if self.fixed_end is None:
            return self.start, self.end
        return self.start, self.end, self.fixed_end

    def bounds(self, row: Row[Any]) -> tuple[datetime, datetime | None]:
        """A selected row's period (end None: still open)."""
        found = row._mapping
        ends = (self.end,) if self.fixed_end is None else (self.end, self.fixed_end)
        known = [found[end] for end in ends if found[end] is not None]
        return found[self.start], min(known) if known else None


ROLE_GRANTS: Final = Period(
    t.role_grants.c.granted_at, t.role_grants.c.revoked_at, t.role_grants.c.ends_at
)
ACCOUNT_ROLE_GRANTS: Final = Period(
    t.account_role_grants.c.granted_at,
    t.account_role_grants.c.revoked_at,
    t.account_role_grants.c.ends_at,
)
SOD_RULES: Final = Period(t.sod_rules.c.defined_at, t.sod_rules.c.removed_at)
ACTIVITY: Final = Period(t.user_activity.c.active_from, t.user_activity.c.active_to)


def active(user_id: Any, at: Any) -> Exists:
    """Whether the user (an id, a column or a bound parameter) was active at `at` (None: now)."""
    activity = t.user_activity.c
    return exists().where(activity.user_id == user_id, ACTIVITY.covers(at))


def is_active(user_id: Any, at: Any) -> Select[Any]:
    """`active` as a query of its own (one row, one boolean)."""
    return select(active(user_id, at))


def grants_held(user_id: Any, at: Any) -> ColumnElement[bool]:
    """The user's role grants that cover `at` (None: now), active or not."""
    return and_(t.role_grants.c.user_id == user_id, ROLE_GRANTS.covers(at))


def common(*periods: tuple[datetime, datetime | None]) -> tuple[datetime, datetime | None] | None:
    """The part that periods (end None: open) have in common, or None if they do not meet:
    in Python, for the intervals in which a role was effectively held."""
    begin = max(start for start, _ in periods)
    ends = [end for _, end in periods if end is not None]
    finish = min(ends) if ends else None
    return (begin, finish) if finish is None or begin < finish else None
