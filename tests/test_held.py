"""The one rule of "held at T" (projections/held.py): periods start inclusive, end exclusive,
open while their end is None; SQL and Python agree on it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from sqlalchemy import create_engine, insert, select

from projections import held
from projections import tables as t

T = datetime(2026, 3, 1, tzinfo=UTC)
H = timedelta(hours=1)


def test_common_part_of_periods() -> None:
    assert held.common((T, T + 2 * H), (T + H, None)) == (T + H, T + 2 * H)
    assert held.common((T, None), (T + H, None)) == (T + H, None)
    assert held.common((T, T + H), (T + H, T + 2 * H)) is None  # the end is exclusive
    assert held.common((T, T + H), (T + 2 * H, None)) is None


@pytest.mark.parametrize(
    ("end", "at", "covered"),
    [
        (None, T, True),  # the start is inclusive
        (None, T - H, False),
        (T + H, T + H, False),  # the end is exclusive
        (T + H, T + H / 2, True),
        (T + H, None, False),  # now: only an open period
        (None, None, True),
    ],
)
def test_sql_covers_as_python_does(
    url: str, end: datetime | None, at: datetime | None, covered: bool
) -> None:
    engine = create_engine(url)
    t.user_activity.create(engine)
    user_id = t.user_activity.c.user_id
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(t.user_activity).values(user_id=uuid4(), active_from=T, active_to=end)
            )
            found = conn.execute(select(user_id).where(held.ACTIVITY.covers(at))).all()
    finally:
        engine.dispose()
    assert bool(found) == covered
    if at is not None:
        assert (held.common((T, end), (at, at + timedelta(microseconds=1))) is not None) == covered
