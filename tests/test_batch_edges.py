"""A command id in `apply`: a line repeating one, in the same batch or a later one, returns the
first result and records nothing. Found by mutation testing (scripts/mutation.py)."""

from __future__ import annotations

import json
from uuid import UUID

import pytest

from ledger import Ledger
from ledger.importer import Importer
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
