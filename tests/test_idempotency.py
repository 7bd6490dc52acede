"""`command_id`: a command applied once, whatever happens to the process or the state since."""

from __future__ import annotations

import json
from uuid import UUID

import pytest

from ledger import Conflict, InactiveUser, Ledger
from ledger.importer import Importer
from tests.conftest import ADMIN
from tests.helpers import event_names, stored_state


def test_a_repeated_command_id_returns_the_first_result(led: Ledger, acme: UUID) -> None:
    ann = led.create_user("ann@example.org", account_id=acme, actor=ADMIN, command_id="imp-1")
    before = stored_state(led)
    again = led.create_user("ann@example.org", account_id=acme, actor=ADMIN, command_id="imp-1")
    assert again == ann
    assert stored_state(led) == before


def test_the_first_result_holds_even_after_the_state_changed(led: Ledger, acme: UUID) -> None:
    ann = led.create_user("ann@example.org", account_id=acme, actor=ADMIN)
    assert led.grant_role(ann, "admin", actor=ADMIN, command_id="g-1") is True
    led.revoke_role(ann, "admin", actor=ADMIN)
    before = stored_state(led)
    assert led.grant_role(ann, "admin", actor=ADMIN, command_id="g-1") is True
    assert stored_state(led) == before
    assert led.repository.get(ann).roles == set()


def test_a_no_op_remembers_its_command_id_too(led: Ledger, acme: UUID) -> None:
    ann = led.create_user("ann@example.org", account_id=acme, actor=ADMIN, roles=["admin"])
    assert led.grant_role(ann, "admin", actor=ADMIN, command_id="g-2") is False
    led.revoke_role(ann, "admin", actor=ADMIN)
    assert led.grant_role(ann, "admin", actor=ADMIN, command_id="g-2") is False
    assert led.repository.get(ann).roles == set()


def test_metadata_is_not_part_of_the_command(led: Ledger, acme: UUID) -> None:
    ann = led.create_user("ann@example.org", account_id=acme, actor=ADMIN)
    assert led.grant_role(ann, "admin", actor="cli:alice", reason="JIRA-1", command_id="g-3")
    assert led.grant_role(ann, "admin", actor="cli:bob", reason="rerun", command_id="g-3")


def test_same_id_with_other_arguments_or_command_is_a_conflict(led: Ledger, acme: UUID) -> None:
    ann = led.create_user("ann@example.org", account_id=acme, actor=ADMIN)
    led.grant_role(ann, "admin", actor=ADMIN, command_id="g-4")
    before = stored_state(led)
    with pytest.raises(Conflict, match="'g-4'"):
        led.grant_role(ann, "consultant", actor=ADMIN, command_id="g-4")
    with pytest.raises(Conflict, match="'g-4'"):
        led.revoke_role(ann, "admin", actor=ADMIN, command_id="g-4")
    with pytest.raises(Conflict, match="'g-4'"):
        led.create_account("Other", actor=ADMIN, command_id="g-4")
    assert stored_state(led) == before


def test_command_ids_survive_a_restart(url: str) -> None:
    first = Ledger(url)
    try:
        acc = first.create_account("Acme", actor=ADMIN, command_id="acc-1")
    finally:
        first.close()
    second = Ledger(url)
    try:
        assert second.create_account("Acme", actor=ADMIN, command_id="acc-1") == acc
    finally:
        second.close()


def test_a_rejected_command_does_not_consume_its_id(led: Ledger, acme: UUID) -> None:
    ann = led.create_user("ann@example.org", account_id=acme, actor=ADMIN)
    led.deactivate_user(ann, actor=ADMIN)
    with pytest.raises(InactiveUser, match="inactive"):
        led.record_login(ann, command_id="login-1")
    led.reactivate_user(ann, actor=ADMIN)
    assert led.record_login(ann, command_id="login-1") is True
    assert led.repository.get(ann).login_count == 1


def test_a_command_id_reused_in_a_file_with_other_arguments_is_rejected(
    led: Ledger, acme: UUID
) -> None:
    """`ledger apply` (one batch, and against ids stored before): each line that reuses an id
    with one argument changed is rejected, and records nothing."""
    ann = led.create_user("ann@example.org", account_id=acme, actor=ADMIN)
    led.grant_role(ann, "admin", actor=ADMIN, command_id="stored-1")
    lines = [
        {"command": "grant_role", "user": str(ann), "role": "consultant", "command_id": "stored-1"},
        {"command": "create_user", "email": "bo@example.org", "account": "Acme", "command_id": "u"},
        {"command": "create_user", "email": "be@example.org", "account": "Acme", "command_id": "u"},
        {"command": "record_login", "user": str(ann), "at": "2026-01-01T00:00:00+00:00",
         "command_id": "l"},
        {"command": "record_login", "user": str(ann), "at": "2026-01-02T00:00:00+00:00",
         "command_id": "l"},
    ]  # fmt: skip
    before = event_names(led)
    summary = Importer(led, actor=ADMIN).apply(
        [(number, json.dumps(line)) for number, line in enumerate(lines, 1)]
    )
    assert [(r.status, r.error_type) for r in summary.results] == [
        ("rejected", "Conflict"),
        ("applied", None),
        ("rejected", "Conflict"),
        ("applied", None),
        ("rejected", "Conflict"),
    ]
    assert sorted(event_names(led)[len(before) :]) == ["LoginRecorded", "UserCreated", "UserJoined"]
    assert led.repository.get(ann).roles == {"admin"}
    assert led.user_id_for_email("be@example.org") is None
