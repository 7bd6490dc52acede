"""Applied command ids: each one's fingerprint and result, so a repeated id returns the first
result and an id reused for another command is refused."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from ledger.errors import Conflict
from ledger.storage import side_tables as side
from ledger.storage.bulk import select_in
from ledger.storage.recorders import SideTableRecorder
from ledger.storage.side_tables import SideWrite
from ledger.unit_of_work import UnitOfWork
from ledger.validation import CommandId, is_valid, shown

# Made once: `json.dumps` with these options builds an encoder per call (a line of an import
# fingerprints once). Same output as `json.dumps(..., sort_keys=True, default=str)`.
_CANONICAL = json.JSONEncoder(sort_keys=True, default=str)


def encode(result: Any) -> str:
    if isinstance(result, UUID):  # its text needs no escaping: what json.dumps would write
        return f'{{"id": "{result}"}}'
    return json.dumps(result if isinstance(result, bool) else {"id": str(result)})


def decode(stored: str) -> Any:
    value = json.loads(stored)
    return value if isinstance(value, bool) else UUID(value["id"])


class CommandLog:
    """The command ids of one ledger; `secret` keys their fingerprints."""

    def __init__(self, side_tables: SideTableRecorder, secret: bytes) -> None:
        self.side = side_tables
        self.secret = secret

    def fingerprint(self, command: str, args: Mapping[str, Any]) -> str:
        """A keyed hash of the command and its arguments (secrets left out by the caller):
        the key is in the same database, so a copy of it could test guesses of anything
        hashed here."""
        canonical = _CANONICAL.encode({"command": command, "args": args})
        return hmac.new(self.secret, canonical.encode(), hashlib.sha256).hexdigest()

    def remember(self, command_id: str, fingerprint: str, result: Any) -> SideWrite:
        return side.remember_command(command_id, fingerprint, encode(result))

    def prior_result(
        self, uow: UnitOfWork | None, command_id: str, fingerprint: str, command: str
    ) -> tuple[bool, Any]:
        """Whether the command id was applied before (in `uow` or stored), and its result."""
        if uow is not None and command_id in uow.command_results:
            stored_fingerprint, result = uow.command_results[command_id]
        elif uow is not None and command_id in uow.commands_not_applied:
            return False, None
        else:
            row = self.side.select_one(side.SELECT_COMMAND, (command_id,))
            if row is None:
                return False, None
            stored_fingerprint, result = row["fingerprint"], decode(row["result"])
        if stored_fingerprint != fingerprint:
            raise Conflict(
                f"command_id {shown(command_id)} was already used for a different command or "
                f"different arguments than this {command}"
            )
        return True, result

    def prefetch(self, uow: UnitOfWork, command_ids: list[str]) -> None:
        """Look up, in a few queries, which of these command ids were applied before."""
        unique = [c for c in dict.fromkeys(command_ids) if is_valid(CommandId, c)]
        rows = select_in(
            self.side,
            "SELECT command_id, fingerprint, result FROM ledger_commands "
            "WHERE command_id IN ({marks})",
            unique,
        )
        found = {row["command_id"]: row for row in rows}
        for command_id in unique:
            row = found.get(command_id)
            if row is None:
                uow.commands_not_applied.add(command_id)
            else:
                uow.command_results[command_id] = (row["fingerprint"], decode(row["result"]))
