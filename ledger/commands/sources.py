"""Commands on external sources: keep an audit entry of a mirrored system that the ledger
could not interpret (the FlexMeasures connector records them; see `ledger.flexmeasures`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, ClassVar
from uuid import UUID

from pydantic import Field

from ledger.commands.base import (
    Decision,
    References,
    Services,
    arg,
    optional_uuid_of,
    plain,
    valid_as,
)
from ledger.commands.registry import handles
from ledger.domain import ERASED, Account, ExternalSource, User
from ledger.errors import NotFound
from ledger.unit_of_work import UnitOfWork
from ledger.validation import Moment, SourceName, valid

EntryId = Annotated[int, Field(ge=0, le=2**63 - 1, strict=True)]
EntryText = Annotated[str, Field(max_length=100_000)]


def _entry_text(value: object) -> str:
    # kept as the source wrote it, control characters included: it is evidence, not input
    return str(valid(EntryText, value, "text"))


def _optional_user(value: Any, refs: References) -> UUID | None:
    return None if value is None else refs.resolve_user(value)


@dataclass(frozen=True, kw_only=True)
class RecordUnrecognisedEntry(Decision[bool]):
    """Keep entry `entry_id` of `source`'s audit log, which the ledger could not interpret.
    Keeping the same entry twice records nothing and returns False."""

    command: ClassVar[str] = "record_unrecognised_entry"

    source: str = arg(valid_as(SourceName, "source"))
    entry_id: int = arg(valid_as(EntryId, "entry_id"))
    text: str = arg(plain(_entry_text))
    at: datetime = arg(valid_as(Moment, "at"))
    user: UUID | None = arg(_optional_user, None)
    account: UUID | None = arg(optional_uuid_of("account"), None)


@handles(RecordUnrecognisedEntry)
def record_unrecognised_entry(
    command: RecordUnrecognisedEntry, uow: UnitOfWork, services: Services
) -> bool:
    text = command.text
    if command.user is not None and uow.load(User, command.user, "user").erased:
        text = ERASED  # the user's key, which would seal it, is gone
    if command.account is not None:
        uow.load(Account, command.account, "account")
    source_id = ExternalSource.id_for(command.source)
    try:
        source = uow.load(ExternalSource, source_id, "source")
    except NotFound:
        source = ExternalSource.register(command.source, uow.meta)
        uow.add(source)
    if command.entry_id in source.recorded_entries:
        return False
    source.record_unrecognised(
        uow.meta,
        entry_id=command.entry_id,
        text=text,
        at=command.at,
        affected_user_id=command.user,
        affected_account_id=command.account,
    )
    return True
