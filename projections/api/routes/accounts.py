"""`/api/v3_0/accounts`: the accounts the caller may read, one account, its audit log and its
annotations."""

from typing import Annotated, Any

from fastapi import APIRouter, Query

import projections.api.policy as policy
import projections.api.schemas as schemas
from projections.api.audit_log import AuditLogParameters, audit_log
from projections.api.dependencies import Read, account_or_404
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
    "/api/v3_0/accounts",
    response_model=list[schemas.Account] | schemas.AccountsPage,
    responses=PROBLEMS,
)
def list_accounts(
    read: Read,
    page: Annotated[int | None, Query(ge=1)] = None,
    per_page: PerPage = None,
    per_page_now: PerPageNow = None,
    filter: str | None = None,
) -> Any:
    def answer(me: Principal, rm: ReadModel, ids: ExternalIds) -> Any:
        accounts = [
            ids.account(schemas.Account.of(a))
            for a in rm.list_accounts()
            if policy.can_read_account(me, a)
        ]
        return paged(
            accounts,
            page,
            per_page_given(per_page_now, per_page),
            filter,
            lambda a: (a.name,),
            schemas.AccountsPage,
        )

    return read.in_thread(answer)


@router.get("/api/v3_0/accounts/{id}", response_model=schemas.Account, responses=PROBLEMS)
async def get_account(id: AnyId, read: Read) -> schemas.Account:
    def answer(me: Principal, rm: ReadModel, ids: ExternalIds) -> schemas.Account:
        account = account_or_404(rm, ids.ledger_id("account", id))
        if not policy.can_read_account(me, account):
            raise forbidden(f"account {id}")
        ends = rm.account_role_ends(account.id)
        shown = schemas.Account.of(account).model_copy(update={"account_role_ends": ends})
        return ids.account(shown)

    return await read(answer)


@router.get(
    "/api/v3_0/accounts/{id}/auditlog",
    response_model=list[schemas.AuditLogEntry] | schemas.AuditLogPage,
    responses=PROBLEMS,
)
def account_audit_log(id: AnyId, read: Read, query: AuditLogParameters) -> Any:
    """The account's changes and its users' (as FlexMeasures logs a member's changes with
    their account)."""

    def answer(me: Principal, rm: ReadModel, ids: ExternalIds) -> Any:
        account = account_or_404(rm, ids.ledger_id("account", id))
        if not policy.can_read_account_audit_log(me, account):
            raise forbidden(f"the audit log of account {id}")
        return audit_log(rm, history(rm, account_id=account.id), me, query, ids)

    return read.in_thread(answer)


@router.get(
    "/api/v3_0/accounts/{id}/annotations",
    response_model=list[schemas.Annotation],
    responses=PROBLEMS,
)
def account_annotations(
    id: AnyId,
    read: Read,
    annotations_after: UtcDateTime | None = None,
    annotations_before: UtcDateTime | None = None,
    beliefs_after: UtcDateTime | None = None,
    beliefs_before: UtcDateTime | None = None,
    source: Annotated[list[str] | None, Query()] = None,
    annotation_starts_after: UtcDateTime | None = None,
    annotation_ends_before: UtcDateTime | None = None,
) -> list[schemas.Annotation]:
    def answer(me: Principal, rm: ReadModel, ids: ExternalIds) -> list[schemas.Annotation]:
        account = account_or_404(rm, ids.ledger_id("account", id))
        if not policy.can_read_account(me, account):
            raise forbidden(f"account {id}")
        found = rm.search_annotations(
            account.id,
            annotations_after=annotations_after or annotation_starts_after,
            annotations_before=annotations_before or annotation_ends_before,
            beliefs_after=beliefs_after,
            beliefs_before=beliefs_before,
            source=source,
        )
        assert isinstance(found, list)
        return [schemas.Annotation.of(a) for a in found]

    return read.in_thread(answer)
