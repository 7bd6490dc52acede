"""The one registry of commands: name -> command type -> handler, filled where each handler is
declared (`@handles(CommandType)`). The runner, `ledger apply`, the CLI's checks and the tests
read it; `ledger.commands` imports every module that declares handlers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ledger.commands.base import Command, Services
from ledger.unit_of_work import UnitOfWork

C = TypeVar("C", bound=Command[Any])
Handler = Callable[[C, UnitOfWork, Services], Any]
AfterRun = Callable[[C, Services, UnitOfWork | None], None]


@dataclass(frozen=True)
class Entry(Generic[C]):
    type: type[C]
    handler: Handler[C]
    after_run: AfterRun[C] | None = None
    """Run after the command, whether or not it recorded anything (given the batch, if any)."""


COMMANDS: dict[str, Entry[Any]] = {}
_BY_TYPE: dict[type[Any], Entry[Any]] = {}


def handles(
    command_type: type[C], *, after_run: AfterRun[C] | None = None
) -> Callable[[Handler[C]], Handler[C]]:
    """Declare the decorated function the handler of `command_type`."""

    def register(handler: Handler[C]) -> Handler[C]:
        name = command_type.command
        if name in COMMANDS:
            raise RuntimeError(f"command {name!r} is declared twice")
        entry = Entry(command_type, handler, after_run)
        COMMANDS[name] = entry
        _BY_TYPE[command_type] = entry
        return handler

    return register


def entry_of(command_type: type[C]) -> Entry[C]:
    return _BY_TYPE[command_type]
