"""What a verification reports at the edges: an empty log, with and without a kept digest, and
a log whose very first event is gone (nothing verified before the break). Found by mutation
testing (scripts/mutation.py)."""

from __future__ import annotations

import pytest

from ledger import Ledger
from ledger.audit import Digest, integrity
from ledger.audit.integrity import Verification
from tests.conftest import ADMIN
from tests.test_audit import events_table, raw


@pytest.mark.parametrize("url", ["sqlite"], indirect=True)
def test_an_empty_log_reports_no_events_and_no_head(url: str) -> None:
    led = Ledger(url)
    try:
        assert integrity.verify(led) == Verification(True, 0, None)
        kept = Digest(5, "a" * 64)
        problem = "a digest was kept at position 5"
        assert integrity.verify(led, kept) == Verification(False, 0, None, problem=problem)
    finally:
        led.close()


@pytest.mark.parametrize("url", ["sqlite"], indirect=True)
def test_a_log_missing_its_first_event_reports_nothing_verified(led: Ledger) -> None:
    for role in ("admin", "consultant", "account-admin"):
        led.define_role(role, actor=ADMIN)
    table, column = events_table(led)
    raw(led, f"DELETE FROM {table} WHERE {column} = ?", 1)
    result = integrity.verify(led)
    assert (result.ok, result.events, result.head, result.first_bad_position) == (
        False,
        0,
        None,
        1,
    )


@pytest.mark.parametrize("url", ["sqlite"], indirect=True)
def test_a_link_forged_at_position_zero_is_found(led: Ledger) -> None:
    for role in ("admin", "consultant"):
        led.define_role(role, actor=ADMIN)
    raw(led, "INSERT INTO ledger_chain (position, hash) VALUES (?, ?)", 0, "a" * 64)
    result = integrity.verify(led)
    assert (result.ok, result.events, result.first_bad_position) == (False, 0, 0)
