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
