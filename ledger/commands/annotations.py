"""Commands on an account's annotations: add one, remove one."""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from ledger.commands.base import (
    Decision,
    References,
    Services,
    arg,
    optional_as,
    uuid_of,
    valid_as,
)
from ledger.commands.registry import handles
from ledger.domain import Account, AnnotationKey, User
from ledger.errors import ValidationError
from ledger.unit_of_work import UnitOfWork
from ledger.validation import AnnotationType, Content, Moment, SourceName, as_uuid, valid

Source = tuple[str | None, UUID | None]
"""(a source name, or None; a user, or None): one of the two."""


def parse_source(source: Any, refs: References) -> Source:
    """A source is a name, a user (by id or model), or the email of a user: a text that is a
    user's email names that user, any other text is a source name."""
    if isinstance(source, str):
        name = valid(SourceName, source, "source")
        if "@" in name:
            with suppress(ValidationError):
                if (found := refs.user_id_for_email(name)) is not None:
                    return None, found
        return name, None
    if source is None:
        raise ValidationError("invalid source None: give a source name or a user id")
    return None, as_uuid(source, "source user")


@dataclass(frozen=True, kw_only=True)
class AddAnnotation(Decision[UUID]):
    command: ClassVar[str] = "add_annotation"

    account: UUID = arg(uuid_of("account"))
    content: str = arg(valid_as(Content, "content"))
    start: datetime = arg(valid_as(Moment, "start"))
    end: datetime = arg(valid_as(Moment, "end"))
    belief_time: datetime | None = arg(optional_as(Moment, "belief_time"), None)
    type: AnnotationType = arg(valid_as(AnnotationType, "annotation type"), "label")
    source: Source = arg(parse_source)

    def check(self) -> None:
        if self.end <= self.start:
            raise ValidationError(
                f"invalid end {self.end.isoformat()}: must be after start {self.start.isoformat()}"
            )

    def fingerprint_args(self) -> dict[str, Any]:
        args = super().fingerprint_args()
        args["source_name"], args["source_user"] = args.pop("source")
        return args


@handles(AddAnnotation)
def add_annotation(command: AddAnnotation, uow: UnitOfWork, services: Services) -> UUID:
    account = uow.load(Account, command.account, "account")
    source_name, source_user = command.source
    if source_user is not None:
        uow.load(User, source_user, "source user")
    key = AnnotationKey(
        command.content,
        command.start,
        command.end,
        command.belief_time,
        source_name,
        source_user,
        command.type,
    )
    annotation_id, _ = account.add_annotation(key, uow.meta)
    return annotation_id


@dataclass(frozen=True, kw_only=True)
class RemoveAnnotation(Decision[bool]):
    command: ClassVar[str] = "remove_annotation"

    account: UUID = arg(uuid_of("account"))
    annotation: UUID = arg(uuid_of("annotation"))


@handles(RemoveAnnotation)
def remove_annotation(command: RemoveAnnotation, uow: UnitOfWork, services: Services) -> bool:
    account = uow.load(Account, command.account, "account")
    return account.remove_annotation(command.annotation, uow.meta)
