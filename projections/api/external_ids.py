"""Ids of mirrored systems in the read API: a user or account mirrored from FlexMeasures can be
named in a path by its FlexMeasures integer id as well as by its UUID, and with
`LEDGER_API_IDS=flexmeasures` the answers carry FlexMeasures' ids (`id`, `account_id`, role ids
in `flexmeasures_roles`, the user and account ids of audit-log entries and of the change feed),
so clients written against a FlexMeasures server work unchanged."""

from __future__ import annotations

import os
import re
from typing import Annotated, Any, Final, Literal, TypeVar
from uuid import UUID

from pydantic import Field

from ledger.application import Ledger
from ledger.domain import Role
from ledger.errors import ValidationError
from ledger.storage import side_tables as side
from ledger.validation import shown
from projections.api import schemas
from projections.api.auth import NotInLoop
from projections.api.errors import ApiError

IDS_VARIABLE: Final = "LEDGER_API_IDS"
_FLEXMEASURES_ACTOR: Final = re.compile(r"flexmeasures:(\d{1,18})")
"""The actor of a change mirrored from FlexMeasures, named by the FlexMeasures user's id."""
Kind = Literal["user", "account"]
E = TypeVar("E", bound=schemas.AuditLogEntry)
AnyId = UUID | Annotated[int, Field(ge=0, le=2**63 - 1)]
"""How a path names a user or account: its UUID, or its FlexMeasures id."""


def answers_with_flexmeasures_ids() -> bool:
    """`LEDGER_API_IDS`: `flexmeasures`, or `ledger` (the default: UUIDs)."""
    mode = os.environ.get(IDS_VARIABLE, "ledger").strip() or "ledger"
    if mode not in ("ledger", "flexmeasures"):
        raise ValidationError(
            f"invalid {IDS_VARIABLE} {shown(mode)}: expected 'ledger' or 'flexmeasures'"
        )
    return mode == "flexmeasures"


class ExternalIds:
    """`in_loop`: NotInLoop rather than a look-up (through the ledger's pool, which may wait)."""

    def __init__(self, ledger: Ledger, flexmeasures_ids: bool, *, in_loop: bool = False) -> None:
        self.ledger = ledger
        self.flexmeasures_ids = flexmeasures_ids
        self.in_loop = in_loop
        self._found: dict[tuple[str, UUID], int | None] = {}  # looked up once per request

    def _side_row(self, sql: str, params: tuple[str, Any]) -> dict[str, Any] | None:
        if self.in_loop:
            raise NotInLoop
        return self.ledger.side.select_one(sql, params)

    def ledger_id(self, kind: Kind, given: AnyId) -> UUID:
        """The ledger's id of what `given` names: a UUID, or a FlexMeasures integer id."""
        if isinstance(given, UUID):
            return given
        row = self._side_row(side.SELECT_LEDGER_ID, (kind, given))
        if row is None:
            raise ApiError(404, f"{kind} {given} not found")
        return UUID(row["ledger_id"])

    def _external(self, kind: str, ledger_id: UUID) -> int | None:
        key = (kind, ledger_id)
        if key not in self._found:
            row = self._side_row(side.SELECT_EXTERNAL_ID, (kind, str(ledger_id)))
            self._found[key] = None if row is None else int(row["external_id"])
        return self._found[key]

    def _or_external(self, kind: str, ledger_id: UUID | int | None) -> UUID | int | None:
        """FlexMeasures' id of a mirrored user or account, else the ledger's."""
        if not isinstance(ledger_id, UUID):
            return ledger_id
        found = self._external(kind, ledger_id)
        return ledger_id if found is None else found

    def audit_entry(self, entry: E) -> E:
        """An audit-log entry (or a change of the feed) with FlexMeasures' ids of the users
        and accounts it names, where known: a change mirrored from FlexMeasures names the
        FlexMeasures user who made it by that user's id, as FlexMeasures' own log does."""
        if not self.flexmeasures_ids:
            return entry
        active = self._or_external("user", entry.active_user_id)
        if active is None and entry.active_user_name is not None:
            mirrored = _FLEXMEASURES_ACTOR.fullmatch(entry.active_user_name)
            active = None if mirrored is None else int(mirrored.group(1))
        update: dict[str, object] = {
            "active_user_id": active,
            "affected_user_id": self._or_external("user", entry.affected_user_id),
            "affected_account_id": self._or_external("account", entry.affected_account_id),
        }
        if isinstance(entry, schemas.Change) and entry.aggregate_type in ("User", "Account"):
            kind = "user" if entry.aggregate_type == "User" else "account"
            update["aggregate_id"] = self._or_external(kind, entry.aggregate_id)
        return entry.model_copy(update=update)

    def shown(self, kind: str, ledger_id: UUID) -> UUID | int:
        """A user's or account's id as the API answers with it."""
        if not self.flexmeasures_ids:
            return ledger_id
        return self._external(kind, ledger_id) or ledger_id

    def user(self, user: schemas.User) -> schemas.User:
        if not self.flexmeasures_ids:
            return user
        roles: list[str | int] = []
        for name in user.flexmeasures_roles:
            found = self._external("role", Role.id_for(str(name)))
            roles.append(name if found is None else found)
        return user.model_copy(
            update={
                "id": self._external("user", _uuid(user.id)) or user.id,
                "account_id": self._external("account", _uuid(user.account_id)) or user.account_id,
                "flexmeasures_roles": roles,
            }
        )

    def account(self, account: schemas.Account) -> schemas.Account:
        if not self.flexmeasures_ids:
            return account
        consultancy = account.consultancy_account_id
        return account.model_copy(
            update={
                "id": self._external("account", _uuid(account.id)) or account.id,
                "consultancy_account_id": None
                if consultancy is None
                else self._external("account", _uuid(consultancy)) or consultancy,
            }
        )


def _uuid(value: UUID | int) -> UUID:
    assert isinstance(value, UUID)
    return value
