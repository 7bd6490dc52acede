"""A command id in `apply`: a line repeating one, in the same batch or a later one, returns the
first result and records nothing. Found by mutation testing (scripts/mutation.py)."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import pytest

from ledger import Ledger
from ledger.importer import Importer
from ledger.storage import side_tables
from tests.conftest import ADMIN


@pytest.mark.parametrize("url", ["sqlite"], indirect=True)
def test_a_command_id_repeated_in_a_batch_and_in_the_next_applies_once(
    led: Ledger, acme: UUID
) -> None:
    line = json.dumps({"command": "create_account", "name": "Beta", "command_id": "c-1"})
    first, again = Importer(led, actor=ADMIN).apply([(1, line), (2, line)]).results
    assert (first.status, again.status) == ("applied", "unchanged")
    assert isinstance(first.result, UUID) and again.result == first.result
    events = led.recorder.max_notification_id()
    [later] = Importer(led, actor=ADMIN).apply([(1, line)]).results
    assert (later.status, later.result) == ("unchanged", first.result)
    assert led.recorder.max_notification_id() == events


def _lines(*names: str) -> list[tuple[int, str]]:
    """create_account lines; a repeated name is rejected by state (the name is taken)."""
    return [
        (n, json.dumps({"command": "create_account", "name": name}))
        for n, name in enumerate(names, 1)
    ]


@pytest.mark.parametrize("url", ["sqlite"], indirect=True)
def test_stop_on_error_stops_at_the_first_rejected_line_across_batches(led: Ledger) -> None:
    lines = _lines("A", "A", "B", "C")
    importer = Importer(led, actor=ADMIN, batch_size=2)
    stopped = importer.apply(lines, stop_on_error=True).results
    assert [(r.line, r.status) for r in stopped] == [(1, "applied"), (2, "rejected")]
    assert led.account_id_for_name("B") is None and led.account_id_for_name("C") is None


@pytest.mark.parametrize("url", ["sqlite"], indirect=True)
def test_without_stop_on_error_a_rejected_line_is_passed_over(led: Ledger) -> None:
    results = Importer(led, actor=ADMIN, batch_size=2).apply(_lines("A", "A", "B", "C")).results
    assert [r.status for r in results] == ["applied", "rejected", "applied", "applied"]
    assert led.account_id_for_name("C") is not None


@pytest.mark.parametrize("url", ["sqlite"], indirect=True)
def test_a_batch_looks_up_the_emails_usernames_and_names_it_claims_ahead_only(
    led: Ledger, acme: UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The prefetch answers every claim look-up of the batch's lines (taken or free, after an
    invalid username too): none is asked of the database one by one."""
    led.create_user("taken@example.com", account_id=acme, actor=ADMIN, username="taken")
    one_by_one: list[tuple[Any, ...]] = []
    real = led.side.select_one

    def select_one(sql: str, params: tuple[Any, ...]) -> dict[str, Any] | None:
        if sql == side_tables.SELECT_CLAIM_OWNER:
            one_by_one.append(params)
        return real(sql, params)

    monkeypatch.setattr(led.side, "select_one", select_one)
    lines = [
        {"command": "create_account", "name": "Beta"},
        {"command": "create_account", "name": "Acme"},
        {"command": "create_user", "email": "new@example.com", "account": "Beta",
         "username": "newbie"},
        {"command": "create_user", "email": "bad@example.com", "account": "Beta",
         "username": "bad\x00name"},
        {"command": "create_user", "email": "Taken@Example.com", "account": "Beta"},
        {"command": "create_user", "email": "other@example.com", "account": "Beta",
         "username": "taken"},
    ]  # fmt: skip
    results = (
        Importer(led, actor=ADMIN)
        .apply([(n, json.dumps(line)) for n, line in enumerate(lines, 1)])
        .results
    )
    assert [r.status for r in results] == [
        "applied",
        "rejected",
        "applied",
        "rejected",
        "rejected",
        "rejected",
    ]
    assert one_by_one == []
