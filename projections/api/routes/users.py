"""`/api/v3_0/users`: the users the caller may read, one user, its audit log and its roles."""

from typing import Annotated, Any

from fastapi import APIRouter, Query

import projections.api.policy as policy
import projections.api.schemas as schemas
from projections.api.audit_log import AuditLogParameters, audit_log
from projections.api.dependencies import (
    Read,
    account_or_404,
    user_and_role_ends_or_404,
    user_or_404,
)
from projections.api.errors import PROBLEMS, forbidden
from projections.api.external_ids import AnyId, ExternalIds
from projections.api.paging import PerPage, PerPageNow, per_page_given
from projections.api.paging import page as paged
from projections.api.policy import Principal
from projections.api.schemas import UtcDateTime
from projections.changes import history
from projections.read_model import ReadModel

router = APIRouter()


@router.get(
    "/api/v3_0/users", response_model=list[schemas.User] | schemas.UsersPage, responses=PROBLEMS
)
def list_users(
    read: Read,
    account_id: AnyId | None = None,
    include_inactive: bool = False,
    page: Annotated[int | None, Query(ge=1)] = None,
    per_page: PerPage = None,
    per_page_now: PerPageNow = None,
    filter: str | None = None,
) -> Any:
    def answer(me: Principal, rm: ReadModel, ids: ExternalIds) -> Any:
        if account_id is not None:
            account = account_or_404(rm, ids.ledger_id("account", account_id))
            if not policy.can_read_account(me, account):
                raise forbidden(f"the users of account {account_id}")
            users = rm.list_users(account.id, include_inactive=include_inactive)
        else:
            readable = {
                a.id
                for a in rm.list_accounts(include_closed=True)
                if policy.can_read_account(me, a)
            }
            users = [
                u
                for u in rm.list_users(include_inactive=include_inactive)
                if u.account_id in readable
            ]
        return paged(
            [ids.user(schemas.User.of(u)) for u in users],
            page,
            per_page_given(per_page_now, per_page),
            filter,
            lambda u: (u.email, u.username),
            schemas.UsersPage,
        )

    return read.in_thread(answer)


@router.get("/api/v3_0/users/{id}", response_model=schemas.User, responses=PROBLEMS)
async def get_user(id: AnyId, read: Read) -> schemas.User:
    def answer(me: Principal, rm: ReadModel, ids: ExternalIds) -> schemas.User:
        user, ends, account = user_and_role_ends_or_404(rm, ids.ledger_id("user", id))
        if not policy.can_read_user(me, user, account):
            raise forbidden(f"user {id}")
        shown = schemas.User.of(user).model_copy(update={"role_ends": ends})
        return ids.user(shown)

    return await read(answer)


@router.get(
    "/api/v3_0/users/{id}/auditlog",
    response_model=list[schemas.AuditLogEntry] | schemas.AuditLogPage,
    responses=PROBLEMS,
)
def user_audit_log(id: AnyId, read: Read, query: AuditLogParameters) -> Any:
    def answer(me: Principal, rm: ReadModel, ids: ExternalIds) -> Any:
        user, account = user_or_404(rm, ids.ledger_id("user", id))
        if not policy.can_read_user_audit_log(me, user, account):
            raise forbidden(f"the audit log of user {id}")
        changes = history(rm, aggregate_id=user.id)
        if user.id != me.user.id:  # a moved user's entries from before: their account's to read
            readable = policy.audit_logs_readable(me, rm.list_accounts(include_closed=True))
            if readable is not None:
                changes = [c for c in changes if c.account_id is None or c.account_id in readable]
        return audit_log(rm, changes, me, query, ids)

    return read.in_thread(answer)


@router.get("/api/v3_0/users/{id}/roles", response_model=schemas.UserRoles, responses=PROBLEMS)
async def user_roles(id: AnyId, read: Read, at: UtcDateTime | None = None) -> schemas.UserRoles:
    def answer(me: Principal, rm: ReadModel, ids: ExternalIds) -> schemas.UserRoles:
        user, account = user_or_404(rm, ids.ledger_id("user", id))
        if not policy.can_read_user(me, user, account):
            raise forbidden(f"user {id}")
        roles = sorted(rm.roles(user.id, at=at))
        ends = rm.role_ends(user.id, at=at)
        return schemas.UserRoles(
            user_id=user.id,
            at=at,
            roles=roles,
            ends={role: end for role, end in ends.items() if role in roles},
        )

    return await read(answer)
