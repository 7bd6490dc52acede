"""What every `ledger` subcommand shares: the global options, the opened databases, output."""

from __future__ import annotations

import getpass
import json
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any, Final, TypeVar
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click
from rich.console import Console

from ledger.application import Ledger
from ledger.errors import NotFound, ValidationError
from ledger.storage import replay_file
from ledger.storage.settings import StorageError, database_url, sqlite_file
from ledger.validation import shown

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
    as_user: str | None = None
    as_json: bool = False
    tz: tzinfo = UTC
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
        """The ledger, to record into (set up if the database holds none yet)."""
        if self._ledger is None:
            self._ledger = Ledger(self.url)
            self._ledger.act_as(self.as_user)
        return self._ledger

    @property
    def existing_ledger(self) -> Ledger:
        """The ledger, for a command that only reads: a database without one is refused, not
        set up; one that cannot be written is opened read-only."""
        if self._ledger is None:
            self._ledger = Ledger(self.url, create=False)
        return self._ledger

    def require_ledger(self) -> None:
        """Refuse a database that holds no ledger (a command that only reads sets none up)."""
        _ = self.existing_ledger

    @property
    def read_model(self) -> Any:
        """The read models (the CLI sits above both sides; imported here, when needed)."""
        if self._read_model is None:
            from projections import ReadModel

            if replay_file.read(self.url) is not None:
                self._read_model = ReadModel(self.url)  # read-only, with no log to catch up
                self._caught_up = True
                return self._read_model
            try:
                source = self.existing_ledger
            except NotFound as missing:
                self._read_model = self._replayed(missing)
            else:
                self._read_model = ReadModel(self.url, source=source, read_only=source.read_only)
        return self._read_model

    def _replayed(self, missing: NotFound) -> Any:
        """The read models of a point-in-time replay (`ledger audit replay --out FILE`): a file
        with read models and no log, answered as it stands; else `missing` is the answer."""
        from projections import ReadModel

        path = sqlite_file(self.url)
        if path is None or not path.is_file():
            raise missing
        try:
            replayed = ReadModel(self.url, read_only=True)
        except StorageError:
            raise missing from None
        self._caught_up = True  # there is no log to catch up with
        return replayed

    @property
    def reads(self) -> Any:
        """The read models, caught up with every event recorded so far (read-only: as they
        are, with a warning when they lag behind the log)."""
        read_model = self.read_model
        if not self._caught_up:
            if read_model.read_only:
                behind = read_model.lag()
                if behind:
                    self.warn(
                        f"{read_model.shown_url} is open read-only and its read models lag "
                        f"behind the log ({behind} not projected): these answers leave them out"
                    )
            else:
                read_model.catch_up()
            self._caught_up = True
        return read_model

    def close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()
        if self._read_model is not None:
            self._read_model.close()

    # -- naming users and accounts --------------------------------------------------------------

    def user_id(self, reference: str) -> UUID:
        """A user named by id or email."""
        return self.ledger.resolve_user(reference)

    def account_id(self, reference: str) -> UUID:
        """An account named by id or (open account) name."""
        return self.ledger.resolve_account(reference)

    # -- output ---------------------------------------------------------------------------------

    def emit(self, data: Any, human: Callable[[Console], None] | str | None = None) -> None:
        if self.as_json:
            click.echo(json.dumps(data, default=_json_default, indent=None))
            return
        console = output_console()
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

    def warn(self, message: str) -> None:
        click.echo(f"warning: {printable(message)}", err=True)


_UNPRINTABLE: Final = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\ud800-\udfff]")


def printable(line: str) -> str:
    """A message as one line a terminal shows as it is: its control characters (say, of a
    file name given) escaped, never acted on."""
    return _UNPRINTABLE.sub(lambda found: found.group().encode("unicode_escape").decode(), line)


PIPED_WIDTH = 10_000
"""Columns of output that goes to a file or a pipe: wide enough that no table is cut."""


def output_console(*, stderr: bool = False) -> Console:
    """A rich console: a terminal's width on a terminal; piped, wide enough that tables and
    lines are never truncated nor wrapped (rich would assume 80 columns). Its text is shown as
    it is: a name such as "[bold]x" is not read as rich markup."""
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr, markup=False)
    return Console(stderr=stderr, width=PIPED_WIDTH, markup=False)


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


class TimeZone(click.ParamType[tzinfo, Any]):
    """An IANA time zone name, such as Europe/Amsterdam."""

    name = "zone"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tzinfo):
            return value
        try:
            return ZoneInfo(str(value).strip())
        except (ZoneInfoNotFoundError, ValueError, OSError):
            self.fail(
                f"unknown time zone {shown(value)} (an IANA name, e.g. Europe/Amsterdam)",
                param,
                ctx,
            )


class Instant(click.ParamType[datetime, Any]):
    """An instant, as every option that takes one reads it: ISO 8601 with an offset or `Z`; a
    time without one is in the zone of --tz (default UTC); a date alone is midnight there.
    The result is timezone-aware, in UTC."""

    name = "instant"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, datetime) and value.tzinfo is not None:
            return value
        text = str(value).strip()
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            self.fail(
                f"{shown(text)} is not a date or a time: use ISO 8601, e.g. 2026-03-01, "
                "2026-03-01T09:30 (in --tz) or 2026-03-01T09:30:00+01:00",
                param,
                ctx,
            )
        if moment.tzinfo is None:
            found = ctx.find_object(State) if ctx is not None else None
            moment = moment.replace(tzinfo=found.tz if found is not None else UTC)
        try:
            return moment.astimezone(UTC)
        except OverflowError:
            side = "before year 1" if moment.year < 5000 else "after year 9999"
            self.fail(f"{shown(text)} is out of range: in UTC it falls {side}", param, ctx)


INSTANT = Instant()


def global_options(command: F) -> F:
    """--db, --actor, --reason, --as-user, --json and --tz, accepted before or after the
    subcommand."""
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
                "--as-user",
                expose_value=False,
                callback=_set("as_user"),
                help="Check the command against this user's permissions (id or email); a "
                "refusal is journalled. Without it the caller is trusted.",
            ),
            click.option(
                "--json",
                "as_json",
                is_flag=True,
                expose_value=False,
                callback=_set("as_json"),
                help="Machine-readable output.",
            ),
            click.option(
                "--tz",
                type=TimeZone(),
                is_eager=True,  # before the options whose times it places
                expose_value=False,
                callback=_set("tz"),
                help="The time zone of dates and times given without an offset (IANA name; "
                "default UTC).",
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
