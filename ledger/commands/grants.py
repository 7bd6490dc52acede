"""Commands on time-limited grants of users' and accounts' roles: move a grant's end, and record
the expiry of every grant whose end has passed. Also how the side table of grant ends follows
the aggregates (`end_writes`), for the grant commands of users and accounts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Final
from uuid import UUID

from ledger import references
from ledger.commands.base import Decision, References, Services, arg, plain, valid_as
from ledger.commands.registry import handles
from ledger.domain import Account, LedgerAggregate, User
from ledger.domain.grants import RoleHolder
from ledger.errors import NotFound
from ledger.storage import side_tables as side
from ledger.unit_of_work import UnitOfWork
from ledger.validation import Moment, role_name

USER: Final = "user"
ACCOUNT: Final = "account"


@contextmanager
def grant_ends_followed(uow: UnitOfWork, holder: RoleHolder) -> Iterator[None]:
    """Keep `ledger_grant_ends` in step with what the block does to `holder`'s grants: a row
    for each held grant with an end, written in the same transaction as the events."""
    before = dict(holder.grant_ends)
    yield
    after = holder.grant_ends
    holder_id: UUID = getattr(holder, "id")  # noqa: B009 (the aggregate's id)
    kind = USER if isinstance(holder, User) else ACCOUNT
    for role in sorted(set(before) | set(after)):
        end = after.get(role)
        if end == before.get(role):
            continue
        if end is None:
            uow.write(side.delete_grant_end(holder_id, role))
        else:
            uow.write(side.put_grant_end(holder_id, kind, role, end))


def _user_or_account(value: Any, refs: References) -> UUID:
    """A user (by id or email) or an account (by id or open account name)."""
    if references.is_email(value):
        return refs.resolve_user(value, "user or account")
    if isinstance(value, str):
        return refs.resolve_account(value, "user or account")
    return refs.resolve_user(value, "user or account")


@dataclass(frozen=True, kw_only=True)
class ExtendGrant(Decision[bool]):
    """Move the end of a held time-limited (or open-ended) grant to `until`."""

    command: ClassVar[str] = "extend_grant"

    user_or_account: UUID = arg(_user_or_account)
    role: str = arg(plain(role_name))
    until: datetime = arg(valid_as(Moment, "until"))


@handles(ExtendGrant)
def extend_grant(command: ExtendGrant, uow: UnitOfWork, services: Services) -> bool:
    holder = uow.load(LedgerAggregate, command.user_or_account, "user or account")
    if not isinstance(holder, User | Account):
        raise NotFound(f"user or account {command.user_or_account} not found")
    with grant_ends_followed(uow, holder):
        return holder.extend_grant(command.role, command.until, uow.meta)


@dataclass(frozen=True, kw_only=True)
class ExpireGrants(Decision[int]):
    """Record the expiry (RoleExpired, AccountRoleExpired) of every grant whose end has passed
    by the time of the command; return how many. Each is recorded once: a second run, or one
    in another process at the same time, finds them settled."""

    command: ClassVar[str] = "expire_grants"


@handles(ExpireGrants)
def expire_grants(command: ExpireGrants, uow: UnitOfWork, services: Services) -> int:
    now = uow.meta.timestamp
    ended: dict[tuple[UUID, str], list[str]] = {}
    for row in services.grants_ended(now):
        ended.setdefault((UUID(row["holder_id"]), row["kind"]), []).append(row["role"])
    expired = 0
    for (holder_id, kind), roles in ended.items():
        holder: User | Account = (
            uow.load(User, holder_id, kind) if kind == USER else uow.load(Account, holder_id, kind)
        )
        ends = dict(holder.grant_ends)
        with grant_ends_followed(uow, holder):
            expired += holder.expire(uow.meta)
        for role in roles:  # rows the aggregate does not back (none is ever written so)
            if role not in ends:
                uow.write(side.delete_grant_end(holder_id, role))
            elif ends[role] > now:
                uow.write(side.put_grant_end(holder_id, kind, role, ends[role]))
    return expired
