"""What every `ledger` subcommand shares: the global options, the opened databases, output."""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

import click
from rich.console import Console

from ledger.application import Ledger
from ledger.errors import NotFound, ValidationError
from ledger.storage.settings import database_url

F = TypeVar("F", bound=Callable[..., Any])


def default_actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return os.environ.get("LEDGER_ACTOR") or f"cli:{user}"


@dataclass
class State:
    db_url: str | None = None
    actor: str | None = None
    reason: str | None = None
    as_json: bool = False
    _ledger: Ledger | None = field(default=None, repr=False)
    _read_model: Any = field(default=None, repr=False)
    _caught_up: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        return database_url(self.db_url)

    @property
    def who(self) -> str:
        return self.actor or default_actor()

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            self._ledger = Ledger(self.url)
        return self._ledger

    @property
    def read_model(self) -> Any:
        """The read models (the CLI sits above both sides; imported here, when needed)."""
        if self._read_model is None:
            from projections import ReadModel

            self._read_model = ReadModel(self.url)
        return self._read_model

    @property
    def reads(self) -> Any:
        """The read models, caught up with every event recorded so far."""
        if not self._caught_up:
            self.read_model.catch_up()
            self._caught_up = True
        return self.read_model

    def close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()
        if self._read_model is not None:
            self._read_model.close()

    # -- naming users and accounts --------------------------------------------------------------

    def user_id(self, reference: str) -> UUID:
        """A user named by id or email."""
        try:
            return UUID(reference)
        except ValueError:
            pass
        found = self.ledger.user_id_for_email(reference)
        if found is None:
            raise NotFound(f"user {reference!r} not found")
        return found

    def account_id(self, reference: str) -> UUID:
        """An account named by id or (open account) name."""
        try:
            return UUID(reference)
        except ValueError:
            pass
        found = self.ledger.account_id_for_name(reference)
        if found is None:
            raise NotFound(f"account {reference!r} not found (among open accounts)")
        return found

    # -- output ---------------------------------------------------------------------------------

    def emit(self, data: Any, human: Callable[[Console], None] | str | None = None) -> None:
        if self.as_json:
            click.echo(json.dumps(data, default=_json_default, indent=None))
            return
        console = Console()
        if human is None:
            console.print(data)
        elif isinstance(human, str):
            console.print(human, highlight=False)
        else:
            human(console)

    def emit_result(self, result: Any, what: str) -> None:
        recorded = self.ledger.last_recorded
        if isinstance(result, UUID):
            self.emit({"result": result, "recorded": recorded}, str(result))
        else:
            self.emit(
                {"result": result, "recorded": recorded},
                f"{what}: {'recorded' if recorded else 'unchanged, nothing recorded'}",
            )


def _json_default(value: Any) -> Any:
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return sorted(value)
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    raise TypeError(f"cannot show {type(value).__name__} as JSON")


def state() -> State:
    return click.get_current_context().find_object(State) or State()


def _set(name: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def store(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        if value is None or value is False:
            return
        ctx.ensure_object(State)
        setattr(ctx.find_object(State), name, value)

    return store


def global_options(command: F) -> F:
    """--db, --actor, --reason and --json, accepted before or after the subcommand."""
    for option in reversed(
        [
            click.option(
                "--db",
                "db_url",
                expose_value=False,
                callback=_set("db_url"),
                help="SQLAlchemy URL of the ledger (else $LEDGER_DATABASE_URL, else "
                "sqlite:///ledger.db).",
            ),
            click.option(
                "--actor",
                expose_value=False,
                callback=_set("actor"),
                help="Who issues the command (else $LEDGER_ACTOR, else cli:<os user>).",
            ),
            click.option(
                "--reason",
                expose_value=False,
                callback=_set("reason"),
                help="Why: recorded with every event of the command.",
            ),
            click.option(
                "--json",
                "as_json",
                is_flag=True,
                expose_value=False,
                callback=_set("as_json"),
                help="Machine-readable output.",
            ),
        ]
    ):
        command = option(command)
    return command


def none_if_blank(value: str | None) -> str | None:
    """For update options: an empty string clears the field."""
    if value is None:
        return None
    return value if value.strip() else ""


def require(value: Any, what: str) -> Any:
    if value is None:
        raise ValidationError(f"{what} is required")
    return value
