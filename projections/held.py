"""When a role is held: the one rule behind every question about role grants and a user's
activity, as SQL for the queries, the projector and the reports, and in Python for the reports'
timelines.

A grant, an account's grant and a user's activity are periods: a row starts at its start
(inclusive) and ends at its end (exclusive), or is still open (end NULL). A role is *held* at T
while a grant of it covers T, and *effectively* held while, besides, one of the user's activity
periods covers T: an inactive user holds no roles, as in FlexMeasures. Closing an account needs
no rule of its own: it revokes the account's roles and deactivates its users by events of their
own, which end those rows. A grant that ends by itself (an expiry) is a change to `Period`
alone: `covers`, `meets` and `bounds` are the only readers of a period's end.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Exists, Row, Select, and_, exists, or_, select
from sqlalchemy.sql.elements import ColumnElement

import projections.tables as t


@dataclass(frozen=True)
class Period:
    """The bounds of one kind of period row: `start`, and `end`, which the event that closes
    the row (a revocation, a deactivation) sets."""

    start: ColumnElement[datetime]
    end: ColumnElement[datetime]

    def open(self) -> ColumnElement[bool]:
        """The rows no event has closed yet: the ones a revocation or a deactivation ends."""
        return self.end.is_(None)

    def covers(self, at: Any) -> ColumnElement[bool]:
        """The rows that cover `at` (an instant or a bound parameter; None: now)."""
        if at is None:
            return self.open()
        return and_(self.start <= at, or_(self.end.is_(None), self.end > at))

    def meets(self, since: Any, until: Any) -> ColumnElement[bool]:
        """The rows that overlap [since, until)."""
        return and_(self.start < until, or_(self.end.is_(None), self.end > since))

    def columns(self) -> tuple[ColumnElement[datetime], ColumnElement[datetime]]:
        """What to select for `bounds`."""
        return self.start, self.end

    def bounds(self, row: Row[Any]) -> tuple[datetime, datetime | None]:
        """A selected row's period (end None: still open)."""
        found = row._mapping
        return found[self.start], found[self.end]


ROLE_GRANTS: Final = Period(t.role_grants.c.granted_at, t.role_grants.c.revoked_at)
ACCOUNT_ROLE_GRANTS: Final = Period(
    t.account_role_grants.c.granted_at, t.account_role_grants.c.revoked_at
)
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
