"""The audit log of a user or an account as the read API shows it, as FlexMeasures' audit-log
routes do: each change described (old -> new values), its actor by username where the caller
may read that user; a search `filter`, sorting by `event_datetime`, and paging."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Annotated, Literal
from uuid import UUID

from fastapi import Depends, Query

import projections.api.policy as policy
import projections.api.schemas as schemas
from projections.api.external_ids import ExternalIds
from projections.api.paging import PerPage, PerPageNow, per_page_given
from projections.api.policy import Principal
from projections.changes import Change
from projections.read_model import ReadModel

SortColumn = Literal["event_datetime"]  # FlexMeasures sorts audit logs by this column alone
Direction = Literal["asc", "desc"]


@dataclass(frozen=True)
class AuditLogQuery:
    """FlexMeasures' audit-log parameters: no `page`, the whole log as a list."""

    page: int | None
    per_page: int
    terms: tuple[str, ...]
    sort_by: SortColumn | None
    sort_dir: Direction


def audit_log_query(
    page: Annotated[int | None, Query(ge=1)] = None,
    per_page: PerPage = None,
    per_page_now: PerPageNow = None,
    filter: Annotated[str | None, Query(max_length=500)] = None,
    sort_by: SortColumn | None = None,
    sort_by_now: Annotated[SortColumn | None, Query(alias="sort-by")] = None,
    sort_dir: Direction | None = None,
    sort_dir_now: Annotated[Direction | None, Query(alias="sort-dir")] = None,
) -> AuditLogQuery:
    """`per-page`, `sort-by` and `sort-dir` are FlexMeasures' current names; `per_page`,
    `sort_by` and `sort_dir` its legacy ones (the current name wins when both are given)."""
    return AuditLogQuery(
        page=page,
        per_page=per_page_given(per_page_now, per_page),
        terms=search_terms(filter or ""),
        sort_by=sort_by_now or sort_by,
        sort_dir=sort_dir_now or sort_dir or "asc",
    )


def search_terms(text: str) -> tuple[str, ...]:
    """The terms of a `filter`, quoted as in a shell (`"added role" admin`), as FlexMeasures
    reads them; a quote left open (`O'Brien`) is a character of its term."""
    try:
        terms = shlex.split(text)
    except ValueError:
        terms = text.split()
    return tuple(term.casefold() for term in terms)


AuditLogParameters = Annotated[AuditLogQuery, Depends(audit_log_query)]


def audit_log(
    rm: ReadModel,
    changes: list[Change],
    me: Principal,
    query: AuditLogQuery,
    ids: ExternalIds | None = None,
) -> list[schemas.AuditLogEntry] | schemas.AuditLogPage:
    """The changes as audit-log entries, filtered, sorted, and paged when a page is asked;
    with `ids`, the users and accounts they name by the ids it answers with."""
    entries = entries_of(rm, changes, me)
    total = len(entries)
    if query.terms:
        entries = [entry for entry in entries if _matches(entry, query.terms)]
    if query.sort_by is not None:  # entries of the same instant: in log order, or reversed
        newest_first = query.sort_dir == "desc"
        entries = sorted(
            entries[::-1] if newest_first else entries,
            key=lambda entry: entry.event_datetime,
            reverse=newest_first,
        )
    if query.page is None:
        return _with_ids(entries, ids)
    start = (query.page - 1) * query.per_page
    return schemas.AuditLogPage.model_validate(
        {
            "data": _with_ids(entries[start : start + query.per_page], ids),
            "num-records": total,
            "filtered-records": len(entries),
        }
    )


def entries_of(rm: ReadModel, changes: list[Change], me: Principal) -> list[schemas.AuditLogEntry]:
    names: dict[UUID, str | None] = {}  # the actors' usernames, looked up once
    entries = []
    for change in changes:
        actor_id = _user_id(change.actor)
        entries.append(
            schemas.AuditLogEntry(
                event=change.description,
                event_type=change.event,
                event_datetime=change.timestamp,
                active_user_name=_username(rm, actor_id, me, names) if actor_id else change.actor,
                active_user_id=actor_id,
                affected_user_id=change.aggregate_id if change.aggregate_type == "User" else None,
                affected_account_id=change.account_id,
                reason=change.reason,
            )
        )
    return entries


def _with_ids(
    entries: list[schemas.AuditLogEntry], ids: ExternalIds | None
) -> list[schemas.AuditLogEntry]:
    return entries if ids is None else [ids.audit_entry(entry) for entry in entries]


def _matches(entry: schemas.AuditLogEntry, terms: tuple[str, ...]) -> bool:
    """As FlexMeasures: any term in the event, or in the active user's name."""
    searched = (entry.event.casefold(), (entry.active_user_name or "").casefold())
    return any(term in text for term in terms for text in searched)


def _user_id(actor: str) -> UUID | None:
    try:
        return UUID(actor)
    except ValueError:
        return None


def _username(
    rm: ReadModel, user_id: UUID, me: Principal, names: dict[UUID, str | None]
) -> str | None:
    """The acting user's username, if the caller may read that user (an actor from another
    tenant, e.g. a consultant or a platform admin, is shown by id alone)."""
    if user_id not in names:
        user = rm.get_user(user_id)
        account = None if user is None else rm.get_account(user.account_id)
        readable = (
            user is not None and account is not None and policy.can_read_user(me, user, account)
        )
        names[user_id] = user.username if readable and user else None
    return names[user_id]
