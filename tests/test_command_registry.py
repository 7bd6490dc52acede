"""One registry names every command: each has a handler, a `Ledger` method taking the same
arguments, a CLI subcommand and an `apply` name, and nothing outside the registry takes a
`command_id`. Fingerprints of command ids are the ones recorded before commands were data."""

from __future__ import annotations

import inspect
import json
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import click
import pytest

from ledger import Ledger, ValidationError
from ledger.cli import main
from ledger.cli.writes import RUNS
from ledger.commands import COMMANDS
from ledger.importer import Importer
from tests.conftest import ADMIN
from tests.test_secret_arguments import fingerprint, keyed_hash_with


def _subcommands(group: click.Group, path: str = "") -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found.update(_subcommands(command, f"{path}{name} "))
        else:
            found[f"{path}{name}"] = command
    return found


def _ledger_commands() -> set[str]:
    """The Ledger's public methods that take a command id: its commands."""
    return {
        name
        for name, method in inspect.getmembers(Ledger, inspect.isfunction)
        if not name.startswith("_") and "command_id" in inspect.signature(method).parameters
    }


def test_every_registered_command_has_a_handler_a_method_a_subcommand_and_an_apply_name() -> None:
    cli_commands = _subcommands(main).values()
    for name, entry in COMMANDS.items():
        assert entry.type.command == name
        assert callable(entry.handler)
        method = getattr(Ledger, name, None)
        assert callable(method), f"Ledger.{name} is missing"
        method_arguments = set(inspect.signature(method).parameters) - {"self"}
        assert method_arguments == set(entry.type.parameters()), name
        assert name in RUNS, f"no CLI subcommand runs {name}"
        assert RUNS[name] in cli_commands, f"the subcommand of {name} is not reachable"


def test_apply_takes_exactly_the_registered_commands(tmp_path: Any) -> None:
    with Ledger(f"sqlite:///{tmp_path / 'ledger.db'}") as led:
        importer = Importer(led, actor=ADMIN)
        for name in COMMANDS:
            with pytest.raises(ValidationError) as rejected:
                importer.parse(1, json.dumps({"command": name, "no_such_argument": 1}))
            assert "unexpected keyword argument 'no_such_argument'" in str(rejected.value)
        with pytest.raises(ValidationError, match="unknown command 'no_such_command'"):
            importer.parse(1, json.dumps({"command": "no_such_command"}))


def test_nothing_outside_the_registry_takes_a_command_id() -> None:
    assert _ledger_commands() == set(COMMANDS)
    taking_command_ids = {
        path
        for path, command in _subcommands(main).items()
        if any(option.name == "command_id" for option in command.params)
    }
    running = {path for path, command in _subcommands(main).items() if command in RUNS.values()}
    assert taking_command_ids == running


@pytest.mark.parametrize("url", ["sqlite"], indirect=True)
def test_fingerprints_of_command_ids_are_unchanged(led: Ledger, acme: UUID) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    end = datetime(2026, 1, 2, tzinfo=UTC)
    ann = led.create_user(
        "ann@acme.org", account_id=acme, actor=ADMIN, password="tr0ub4dor&3", command_id="c-1"
    )
    led.update_user(ann, actor=ADMIN, timezone="UTC", command_id="c-2")
    led.update_account(acme, actor=ADMIN, primary_color=None, command_id="c-3")
    led.grant_role(ann, "admin", actor=ADMIN, command_id="c-4")
    other = led.create_account(
        "Other", actor=ADMIN, roles=["Consultancy"], primary_color="#000000",
        secondary_color="#ffffff", command_id="c-5",
    )  # fmt: skip
    led.add_annotation(
        acme, content="hello", start=start, end=end, source="ann@acme.org", actor=ADMIN,
        command_id="c-6",
    )  # fmt: skip
    led.record_login(ann, at=start, ip="10.0.0.1", command_id="c-7")
    led.define_role("viewer", "Reads", actor=ADMIN, command_id="c-8")
    expected: dict[str, tuple[str, dict[str, object]]] = {
        "c-1": ("create_user", {
            "email": "ann@acme.org", "account_id": acme, "username": None,
            "timezone": "Europe/Amsterdam", "roles": [],
        }),
        "c-2": ("update_user", {"user": ann, "email": None, "username": None, "timezone": "UTC"}),
        "c-3": ("update_account", {"account": acme, "primary_color": None}),
        "c-4": ("grant_role", {"user": ann, "role": "admin"}),
        "c-5": ("create_account", {
            "name": "Other", "roles": ["Consultancy"], "consultancy_account_id": None,
            "primary_color": "#000000", "secondary_color": "#ffffff", "logo_url": None,
        }),
        "c-6": ("add_annotation", {
            "account": acme, "content": "hello", "start": start, "end": end,
            "source_name": None, "source_user": ann, "type": "label", "belief_time": None,
        }),
        "c-7": ("record_login", {"user": ann, "at": start, "ip": "10.0.0.1"}),
        "c-8": ("define_role", {"name": "viewer", "description": "Reads"}),
    }  # fmt: skip
    assert other
    for command_id, (command, args) in expected.items():
        assert fingerprint(led, command_id).encode() == keyed_hash_with(led, command, args)
