"""`ledger apply`: a file of commands, one JSON object a line, applied fast and idempotently.

`{"command": "grant_role", "user": "ann@x.org", "role": "admin", "command_id": "imp-2"}`:
`command` names a registered command (`ledger.commands`, each also a Ledger method); the other
keys are its parameter names, except that the user a command acts on is `user` and the account
is `account` (by id, or by email / name; this includes `create_user`'s account and
`move_user`'s new one). `actor`, `reason` and `as_user` default to the CLI's. Lines are applied in
batches, each one transaction; if a concurrent writer gets in the way of a batch, its lines are
re-applied one by one. A bad line (not UTF-8, not JSON, bad values, or rejected by the state)
rejects that line only.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, Final, Literal
from uuid import UUID

from eventsourcing.persistence import IntegrityError, OperationalError, PersistenceError

from ledger.application import Ledger
from ledger.batch import Batch
from ledger.commands import COMMANDS
from ledger.errors import LedgerError, ValidationError
from ledger.runner import is_contention
from ledger.storage.claims import ClaimReferences
from ledger.validation import shown

_USER_REFS: Final = ("user",)
_ACCOUNT_REFS: Final = ("account", "account_id", "consultancy_account_id")

Status = Literal["applied", "unchanged", "rejected"]


@dataclass(frozen=True)
class LineResult:
    line: int
    command: str | None
    status: Status
    result: Any = None
    error: str | None = None
    error_type: str | None = None

    def as_json(self) -> dict[str, Any]:
        shown = str(self.result) if isinstance(self.result, UUID) else self.result
        return {
            "line": self.line,
            "command": self.command,
            "status": self.status,
            "result": shown,
            "error": self.error,
            "error_type": self.error_type,
        }


@dataclass
class Summary:
    results: list[LineResult] = field(default_factory=list)

    def count(self, status: Status) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def rejected(self) -> list[LineResult]:
        return [r for r in self.results if r.status == "rejected"]

    def as_json(self) -> dict[str, Any]:
        return {
            "applied": self.count("applied"),
            "unchanged": self.count("unchanged"),
            "rejected": [r.as_json() for r in self.rejected],
            "lines": [r.as_json() for r in self.results],
        }


class ApplyStopped(LedgerError):
    """A database failure (a full disk, a lost connection) stopped `apply` part way: the lines
    before the failing batch were committed, none from it on."""


@dataclass(frozen=True)
class Command:
    line: int
    name: str
    arguments: dict[str, Any]


Line = tuple[int, str | bytes]  # (line number, text); bytes: not valid UTF-8, to be rejected


def read_lines(lines: Iterable[str | bytes]) -> list[Line]:
    """Numbered lines with content: blank lines and `#` comments are skipped. Lines read as
    bytes are decoded as UTF-8; one that is not valid UTF-8 stays bytes, for `parse` to reject
    (the other lines still apply)."""
    numbered: list[Line] = []
    for number, raw in enumerate(lines, start=1):
        if number == 1:  # a byte order mark, as some editors begin a UTF-8 file with
            raw = (
                raw.removeprefix(b"\xef\xbb\xbf")
                if isinstance(raw, bytes)
                else raw.removeprefix("\ufeff")
            )
        if isinstance(raw, bytes):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                if not raw.lstrip().startswith(b"#"):
                    numbered.append((number, raw))
                continue
        else:
            line = raw
        if line.strip() and not line.lstrip().startswith("#"):
            numbered.append((number, line))
    return numbered


def _references(
    commands: list[Command],
) -> tuple[list[str], list[str], list[str], list[str]]:
    """The command ids, emails, usernames and account names the commands name, to look them
    up in bulk before running them."""
    ids, emails, usernames, accounts = [], [], [], []
    for command in commands:
        arguments = command.arguments
        if isinstance(arguments.get("command_id"), str):
            ids.append(arguments["command_id"].strip())
        for key in ("user", "email", "as_user"):
            value = arguments.get(key)
            if isinstance(value, str) and "@" in value:
                emails.append(value)
        if command.name == "create_user" and isinstance(arguments.get("email"), str):
            email = arguments["email"]
            usernames += [email.rsplit("@", 1)[0], email]
        if isinstance(arguments.get("username"), str):
            usernames.append(arguments["username"])
        for key in ("account", "account_id", "consultancy_account_id", "name"):
            value = arguments.get(key)
            if isinstance(value, str):
                accounts.append(value.strip())
    return ids, emails, usernames, accounts


def _ids_named(parsed: list[Command | LineResult]) -> list[UUID]:
    """The users and accounts the commands name by id."""
    ids = []
    for line in parsed:
        if isinstance(line, Command):
            for key in (*_USER_REFS, *_ACCOUNT_REFS):
                value = line.arguments.get(key)
                # an id has 32 hex digits: a shorter text (an email, a name) is not one
                if isinstance(value, str) and len(value) >= 32:
                    with suppress(ValueError):
                        ids.append(UUID(value))
    return ids


class Importer:
    def __init__(
        self,
        ledger: Ledger,
        *,
        actor: str,
        reason: str | None = None,
        as_user: str | None = None,
        batch_size: int = 1000,
    ) -> None:
        self.ledger = ledger
        self.actor = actor
        self.reason = reason
        self.as_user = as_user  # the default of lines without an `as_user` of their own
        self.batch_size = batch_size

    def parse(self, number: int, text: str | bytes) -> Command:
        """The command a line asks for, with its argument names checked against the
        command's (their values are parsed when it runs)."""
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as error:
                raise ValidationError(
                    f"not UTF-8 text: byte {error.object[error.start]:#04x} at position "
                    f"{error.start + 1} ({error.reason})"
                ) from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValidationError(
                f"not a JSON object: {error.msg} at column {error.colno}"
            ) from None
        except RecursionError:
            raise ValidationError("not a command: its JSON is nested too deeply") from None
        if not isinstance(data, dict):
            raise ValidationError(f"not a JSON object: {shown(text.strip())}")
        name = data.pop("command", None)
        if not isinstance(name, str) or name not in COMMANDS:
            known = ", ".join(sorted(COMMANDS))
            raise ValidationError(f"unknown command {shown(name)}; one of: {known}")
        command_type = COMMANDS[name].type
        parameters = command_type.parameters()
        if name in ("create_user", "move_user") and "account" in data:
            data["account_id"] = data.pop("account")
        if self.as_user is not None and "as_user" in data and data["as_user"] != self.as_user:
            raise ValidationError(
                f"invalid as_user {shown(data['as_user'])}: --as-user {shown(self.as_user)} "
                "acts for every line; a line cannot name another acting user"
            )
        defaults = (("actor", self.actor), ("reason", self.reason), ("as_user", self.as_user))
        for default, value in defaults:
            if default in parameters and default not in data and value is not None:
                data[default] = value
        command_type.check_arguments(data)
        return Command(number, name, data)

    def resolve(self, command: Command, references: ClaimReferences) -> dict[str, Any]:
        """Arguments with users named by email and accounts by name replaced by their ids."""
        arguments = dict(command.arguments)
        for key, value in arguments.items():
            if key in _USER_REFS:
                arguments[key] = _reference(value, "user", references)
            elif key in _ACCOUNT_REFS and value is not None:
                arguments[key] = _reference(value, "account", references)
        return arguments

    def run(self, command: Command, batch: Batch | None = None) -> LineResult:
        """Run a parsed line: in `batch`, or in its own transaction."""
        references = ClaimReferences(self.ledger.claims) if batch is None else batch.references
        try:
            parsed = COMMANDS[command.name].type.parse(
                references, **self.resolve(command, references)
            )
            outcome = self.ledger.runner.run(parsed, None if batch is None else batch.uow)
        except LedgerError as error:
            return LineResult(
                command.line,
                command.name,
                "rejected",
                error=str(error),
                error_type=type(error).__name__,
            )
        status: Status = "applied" if outcome.recorded else "unchanged"
        return LineResult(command.line, command.name, status, result=outcome.result)

    def check(self, lines: list[Line]) -> Summary:
        """Run every line as `apply` would, each against the state the earlier lines leave,
        in one batch that is never committed: nothing is written. Each line's status is the
        one `apply` would give it."""
        summary = Summary()
        with self.ledger.batch() as batch:
            for start in range(0, len(lines), self.batch_size):
                chunk = lines[start : start + self.batch_size]
                parsed = [self._parse_line(number, text) for number, text in chunk]
                self._prefetch(batch, parsed)
                self._run_lines(parsed, False, summary.results, batch)
        return summary

    def apply(
        self,
        lines: list[Line],
        *,
        stop_on_error: bool = False,
        progress: Callable[[int], None] = lambda done: None,
    ) -> Summary:
        """Apply the lines, a batch per transaction. Raises ApplyStopped, saying how far it
        got, if the database fails (a full disk, a lost connection) part way."""
        summary = Summary()
        for start in range(0, len(lines), self.batch_size):
            chunk = lines[start : start + self.batch_size]
            done: list[LineResult] = []  # of this chunk, when its lines are saved one by one
            try:
                stopped = self._apply_batch(chunk, stop_on_error, done)
            except PersistenceError as error:
                summary.results.extend(done)
                line = lines[start + len(done)][0]
                raise ApplyStopped(_stopped_message(summary, line, error)) from error
            summary.results.extend(done)
            progress(len(done))
            if stopped:
                break
        return summary

    def _apply_batch(self, chunk: list[Line], stop_on_error: bool, done: list[LineResult]) -> bool:
        """Apply a chunk of lines in one transaction; `done` receives each line's result once
        it is saved. Returns whether a rejected line stopped it."""
        parsed = [self._parse_line(number, text) for number, text in chunk]
        try:
            with self.ledger.batch() as batch:
                self._prefetch(batch, parsed)
                results: list[LineResult] = []
                stopped = self._run_lines(parsed, stop_on_error, results, batch)
                batch.commit()
            done.extend(results)
            return stopped
        except (IntegrityError, OperationalError) as error:
            if not is_contention(error):
                raise
            # A concurrent writer got in the way: nothing of the batch was saved. Apply its
            # lines one by one, each in its own transaction, with the usual retries.
            return self._run_lines(parsed, stop_on_error, done)

    def _prefetch(self, batch: Batch, parsed: list[Command | LineResult]) -> None:
        """Look up what the commands name in a few queries, not one or two per line."""
        ids, emails, usernames, accounts = _references(
            [line for line in parsed if isinstance(line, Command)]
        )
        batch.prefetch_command_ids(ids)
        batch.prefetch_claims(emails, usernames, accounts)
        batch.preload([*_ids_named(parsed), *batch.claim_owners()])

    def _parse_line(self, number: int, text: str | bytes) -> Command | LineResult:
        """The line's command, or its rejection."""
        try:
            return self.parse(number, text)
        except LedgerError as error:
            return LineResult(
                number, None, "rejected", error=str(error), error_type=type(error).__name__
            )

    def _run_lines(
        self,
        parsed: list[Command | LineResult],
        stop_on_error: bool,
        results: list[LineResult],
        batch: Batch | None = None,
    ) -> bool:
        """Run the lines (in `batch`, or each in its own transaction), appending each one's
        result to `results`; return whether a rejected line stopped them."""
        for line in parsed:
            result = self.run(line, batch) if isinstance(line, Command) else line
            results.append(result)
            if stop_on_error and result.status == "rejected":
                return True
        return False


def _reference(value: Any, kind: str, references: ClaimReferences) -> UUID:
    if not isinstance(value, str):
        raise ValidationError(
            f"invalid {kind} {shown(value)}: give an id, or an "
            f"{'email' if kind == 'user' else 'account name'}"
        )
    if kind == "user":
        return references.resolve_user(value)
    return references.resolve_account(value)


def _stopped_message(summary: Summary, line: int, error: Exception) -> str:
    problem = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return (
        f"apply stopped at line {line} by a database problem ({problem[:200]}); "
        f"the {len(summary.results)} lines before it were committed (applied "
        f"{summary.count('applied')}, unchanged {summary.count('unchanged')}, rejected "
        f"{len(summary.rejected)}), none from line {line} on"
    )
