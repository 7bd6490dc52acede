"""`GET /api/v3_0/auditlog/changes`: the change feed. The events after a position of the log
(exclusive), in log order, with the cursor to read on from; `wait` long-polls for the next
ones. A consumer that keeps the cursor and restarts from it misses nothing and sees nothing
twice: the cursor only ever moves past positions whose events were projected (each page of
the read models commits with its position), and past the events the caller may not read."""

import asyncio
import time
from typing import Annotated, Final
from uuid import UUID

from fastapi import APIRouter, Depends, Query

import projections.api.policy as policy
import projections.api.schemas as schemas
from projections.api.audit_log import entries_of
from projections.api.dependencies import AppServices, Ids, caller, token_header
from projections.api.errors import PROBLEMS, ApiError
from projections.api.external_ids import ExternalIds
from projections.api.policy import Principal
from projections.api.services import Services
from projections.api.workers import in_worker
from projections.changes import changes_after

MAX_LIMIT: Final = 1000
MAX_WAIT: Final = 60.0  # seconds; a client waits longer by asking again with its cursor
POLL_INTERVAL: Final = 0.25  # seconds between looks at the log while a request waits
LAST_POSITION: Final = 2**63 - 1  # the largest position a log can hold (BIGINT)

router = APIRouter()


@router.get("/api/v3_0/auditlog/changes", response_model=schemas.Changes, responses=PROBLEMS)
async def changes(
    services: AppServices,
    ids: Ids,
    authorization: Annotated[str | None, Depends(token_header)],
    after: Annotated[int, Query(ge=0, le=LAST_POSITION)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    wait: Annotated[float, Query(ge=0, le=MAX_WAIT, allow_inf_nan=False)] = 0,
) -> schemas.Changes:
    """Admins and admin-readers see every event; others the events of the audit logs they may
    read (their own user's, and their account's and its users' for account-admins and
    consultants). With `wait`, an answer with no events comes only once `wait` seconds have
    passed; the caller's token and roles are checked again at each look."""
    deadline = time.monotonic() + wait
    me = await in_worker(caller, authorization, services)
    while True:
        found = await in_worker(_changes_after, services, ids, me, after, limit)
        # checked again after reading: a caller deactivated, or whose roles changed, while
        # the events were read gets nothing read under the access they no longer have
        now = await in_worker(caller, authorization, services)
        if _access(now) != _access(me):
            me = now
            continue
        remaining = deadline - time.monotonic()
        if found.changes or remaining <= 0:
            return found
        after = found.next
        await asyncio.sleep(min(POLL_INTERVAL, remaining))


def _access(me: Principal) -> tuple[UUID, UUID, frozenset[str]]:
    """What the events a caller may read depend on."""
    return me.user.id, me.user.account_id, me.roles


def _changes_after(
    services: Services, ids: ExternalIds, me: Principal, after: int, limit: int
) -> schemas.Changes:
    rm = services.reads()
    head = services.ledger.recorder.max_notification_id() or 0
    if after > head:
        raise ApiError(422, f"invalid after {after}: the log's last position is {head}")
    through = rm.position()  # first: every event up to it is in the read models
    readable = policy.audit_logs_readable(me, rm.list_accounts(include_closed=True))
    found = changes_after(
        rm, after, through=through, limit=limit, accounts=readable, user_id=me.user.id
    )
    shown = [
        ids.audit_entry(
            schemas.Change(
                **entry.model_dump(),
                position=change.position,
                aggregate_type=change.aggregate_type,
                aggregate_id=change.aggregate_id,
            )
        )
        for change, entry in zip(found, entries_of(rm, found, me), strict=True)
    ]
    cursor = found[-1].position if len(found) == limit else max(after, through)
    return schemas.Changes(changes=shown, next=cursor)
