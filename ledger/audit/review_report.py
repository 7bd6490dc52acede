"""The `review` report: the evidence of access-review campaigns, as they stood at an instant:
each item with its campaign's status and completion, its decision (certified, revoked or
undecided), who decided it (the reviewer, and the actor who recorded it), when, and why."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final
from uuid import UUID

import pandas as pd
from sqlalchemy import select

from ledger.errors import NotFound
from ledger.validation import Moment, optional, shown
from projections import ReadModel
from projections import tables as t

COLUMNS: Final = [
    "campaign",
    "status",
    "due",
    "completion",
    "item",
    "user_id",
    "user",
    "account",
    "role",
    "decision",
    "decided_at",
    "reviewer_id",
    "reviewer",
    "decided_by",
    "reason",
    "role_revoked",
]
UNDECIDED: Final = "undecided"


def review(rm: ReadModel, campaign: str | None = None, at: Any = None) -> pd.DataFrame:
    """One row per item of `campaign` (None: of every campaign started by `at`), as it stood
    at `at` (default: now). `completion`: "D of N decided" for its campaign."""
    moment = optional(Moment, at, "at") or datetime.now(UTC)
    if campaign is None:
        campaigns = rm.reviews(moment)
    else:
        found = rm.review(campaign, moment)
        if found is None:
            raise NotFound(
                f"review campaign {shown(campaign)} not found (not started by {moment.isoformat()})"
            )
        campaigns = [found]
    rows: list[dict[str, Any]] = []
    for found in campaigns:
        items = rm.review_items(found.name, moment)
        emails = _emails(rm, {item.user_id for item in items} | {found.reviewer_id})
        accounts = _account_names(rm)
        decided = found.certified + found.revoked
        for item in items:
            rows.append(
                {
                    "campaign": found.name,
                    "status": found.status,
                    "due": found.due,
                    "completion": f"{decided} of {found.items} decided",
                    "item": item.id,
                    "user_id": item.user_id,
                    "user": emails.get(item.user_id),
                    "account": accounts.get(item.account_id),
                    "role": item.role,
                    "decision": item.decision or UNDECIDED,
                    "decided_at": item.decided_at,
                    "reviewer_id": item.reviewer_id,
                    "reviewer": None if item.reviewer_id is None else emails.get(item.reviewer_id),
                    "decided_by": item.decided_by,
                    "reason": item.reason,
                    "role_revoked": item.role_revoked,
                }
            )
    return pd.DataFrame(rows, columns=COLUMNS)


def _emails(rm: ReadModel, user_ids: set[UUID]) -> dict[UUID, str]:
    u = t.users.c
    with rm.engine.connect() as conn:
        found = conn.execute(select(u.id, u.email).where(u.id.in_(list(user_ids)))).all()
    rm.personal.prepare(row.email for row in found)
    return {row.id: rm.personal.reveal(row.email, row.id, "email") for row in found}


def _account_names(rm: ReadModel) -> dict[UUID, str]:
    with rm.engine.connect() as conn:
        return dict(conn.execute(select(t.accounts.c.id, t.accounts.c.name)).all())
