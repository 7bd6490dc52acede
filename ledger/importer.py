"""`ledger apply`: a file of commands, one JSON object a line, applied fast and idempotently.

`{"command": "grant_role", "user": "ann@x.org", "role": "admin", "command_id": "imp-2"}`:
`command` is a Ledger method; the other keys are its parameter names, except that the user a
command acts on is `user` and the account is `account` (by id, or by email / name; this includes
`create_user`'s account). `actor` and `reason` default to the CLI's. Lines are applied in
batches, each one transaction; if a concurrent writer gets in the way of a batch, its lines are
re-applied one by one.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, Final, Literal
from uuid import UUID, uuid5

from eventsourcing.persistence import IntegrityError, OperationalError

from ledger.application import Ledger, is_contention
from ledger.errors import LedgerError, NotFound, ValidationError

COMMANDS: Final = (
    "define_role",
    "define_account_role",
    "create_account",
    "update_account",
    "grant_account_role",
    "revoke_account_role",
    "set_consultancy",
    "close_account",
    "create_user",
    "update_user",
    "grant_role",
    "revoke_role",
    "deactivate_user",
    "reactivate_user",
    "record_login",
    "record_last_seen",
    "set_password",
    "erase_user",
    "add_annotation",
    "remove_annotation",
)
_USER_REFS: Final = ("user",)
_ACCOUNT_REFS: Final = ("account", "account_id", "consultancy_account_id")
_PLACEHOLDER: Final = UUID("00000000-0000-4000-8000-000000000000")

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


@dataclass(frozen=True)
class Command:
    line: int
    name: str
    arguments: dict[str, Any]


def read_lines(lines: Iterable[str]) -> list[tuple[int, str]]:
    """Numbered lines with content: blank lines and `#` comments are skipped."""
    return [
        (number, text)
        for number, text in enumerate(lines, start=1)
        if text.strip() and not text.lstrip().startswith("#")
    ]


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
        for key in ("user", "email"):
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
                if isinstance(value, str):
                    with suppress(ValueError):
                        ids.append(UUID(value))
    return ids


class Importer:
    def __init__(
        self, ledger: Ledger, *, actor: str, reason: str | None = None, batch_size: int = 1000
    ) -> None:
        self.ledger = ledger
        self.actor = actor
        self.reason = reason
        self.batch_size = batch_size
        self._signatures: dict[str, inspect.Signature] = {}

    def parse(self, number: int, text: str) -> Command:
        """The command a line asks for, with its arguments checked against the method."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValidationError(
                f"not a JSON object: {error.msg} at column {error.colno}"
            ) from None
        if not isinstance(data, dict):
            raise ValidationError(f"not a JSON object: {text.strip()[:60]!r}")
        name = data.pop("command", None)
        if name not in COMMANDS:
            raise ValidationError(f"unknown command {name!r}; one of: {', '.join(COMMANDS)}")
        signature = self._signature(name)
        parameters = signature.parameters
        if name == "create_user" and "account" in data:
            data["account_id"] = data.pop("account")
        for default, value in (("actor", self.actor), ("reason", self.reason)):
            if default in parameters and default not in data and value is not None:
                data[default] = value
        try:
            signature.bind(**data)
        except TypeError as error:
            raise ValidationError(f"{name}: {error}") from None
        return Command(number, name, data)

    def _signature(self, name: str) -> inspect.Signature:
        if name not in self._signatures:
            self._signatures[name] = inspect.signature(getattr(self.ledger, name))
        return self._signatures[name]

    def resolve(self, command: Command, known: set[str] | None = None) -> dict[str, Any]:
        """Arguments with users named by email and accounts by name replaced by their ids.

        With `known` (a dry run), names created earlier in the file resolve to a placeholder.
        """
        arguments = dict(command.arguments)
        for key, value in arguments.items():
            if key in _USER_REFS:
                arguments[key] = self._reference(value, "user", known)
            elif key in _ACCOUNT_REFS and value is not None:
                arguments[key] = self._reference(value, "account", known)
        return arguments

    def _reference(self, value: Any, kind: str, known: set[str] | None) -> UUID:
        if isinstance(value, str):
            try:
                return UUID(value)
            except ValueError:
                pass
        else:
            raise ValidationError(
                f"invalid {kind} {value!r}: give an id, or an "
                f"{'email' if kind == 'user' else 'account name'}"
            )
        if kind == "user":
            found = self.ledger.user_id_for_email(value)
            key = f"user:{value.strip().casefold()}"
        else:
            found = self.ledger.account_id_for_name(value)
            key = f"account:{value.strip()}"
        if found is None and known is not None and key in known:
            return uuid5(_PLACEHOLDER, key)
        if found is None:
            raise NotFound(f"{kind} {value!r} not found")
        return found

    def run(self, command: Command) -> LineResult:
        try:
            result = getattr(self.ledger, command.name)(**self.resolve(command))
        except LedgerError as error:
            return LineResult(
                command.line,
                command.name,
                "rejected",
                error=str(error),
                error_type=type(error).__name__,
            )
        status: Status = "applied" if self.ledger.last_recorded else "unchanged"
        return LineResult(command.line, command.name, status, result=result)

    def check(self, lines: list[tuple[int, str]]) -> Summary:
        """Validate every line without writing: syntax, arguments, values, and that every user
        and account named exists or is created by an earlier line."""
        summary = Summary()
        known: set[str] = set()
        for number, text in lines:
            name = None
            try:
                command = self.parse(number, text)
                name = command.name
                arguments = self.resolve(command, known)
                with self.ledger.validating_only():
                    getattr(self.ledger, command.name)(**arguments)
            except LedgerError as error:
                summary.results.append(
                    LineResult(
                        number, name, "rejected", error=str(error), error_type=type(error).__name__
                    )
                )
                continue
            if command.name == "create_user":
                known.add(f"user:{str(command.arguments.get('email', '')).strip().casefold()}")
            elif command.name == "create_account":
                known.add(f"account:{str(command.arguments.get('name', '')).strip()}")
            summary.results.append(LineResult(number, name, "unchanged"))
        return summary

    def apply(
        self,
        lines: list[tuple[int, str]],
        *,
        stop_on_error: bool = False,
        progress: Callable[[int], None] = lambda done: None,
    ) -> Summary:
        summary = Summary()
        for start in range(0, len(lines), self.batch_size):
            chunk = lines[start : start + self.batch_size]
            results, stopped = self._apply_batch(chunk, stop_on_error)
            summary.results.extend(results)
            progress(len(results))
            if stopped:
                break
        return summary

    def _apply_batch(
        self, chunk: list[tuple[int, str]], stop_on_error: bool
    ) -> tuple[list[LineResult], bool]:
        parsed = [self._parse_line(number, text) for number, text in chunk]
        try:
            with self.ledger.batch() as batch:
                ids, emails, usernames, accounts = _references(
                    [line for line in parsed if isinstance(line, Command)]
                )
                batch.prefetch_command_ids(ids)
                batch.prefetch_claims(emails, usernames, accounts)
                batch.preload([*_ids_named(parsed), *batch.claim_owners()])
                results, stopped = self._run_lines(parsed, stop_on_error)
                batch.commit()
            return results, stopped
        except (IntegrityError, OperationalError) as error:
            if not is_contention(error):
                raise
            # A concurrent writer got in the way: nothing of the batch was saved. Apply its
            # lines one by one, each in its own transaction, with the usual retries.
            return self._run_lines(parsed, stop_on_error)

    def _parse_line(self, number: int, text: str) -> Command | LineResult:
        """The line's command, or its rejection."""
        try:
            return self.parse(number, text)
        except LedgerError as error:
            return LineResult(
                number, None, "rejected", error=str(error), error_type=type(error).__name__
            )

    def _run_lines(
        self, parsed: list[Command | LineResult], stop_on_error: bool
    ) -> tuple[list[LineResult], bool]:
        results: list[LineResult] = []
        for line in parsed:
            result = self.run(line) if isinstance(line, Command) else line
            results.append(result)
            if stop_on_error and result.status == "rejected":
                return results, True
        return results, False
