"""The chain's links, below the recorder: a link covers every part of the stored event, and
links are never made for positions and events that do not pair up. Found by mutation testing
(scripts/mutation.py)."""

from __future__ import annotations

from uuid import uuid4

import pytest
from eventsourcing.persistence import StoredEvent

from ledger.storage.chain import GENESIS, link_of, links
from ledger.storage.chain_check import CHANGED, NOT_EXTENDED, Checked, _check


def test_links_refuse_positions_and_events_that_do_not_pair_up() -> None:
    event = StoredEvent(originator_id=uuid4(), originator_version=1, topic="t", state=b"{}")
    assert [p for p, _ in links(GENESIS, [7], [event])] == [7]
    with pytest.raises(ValueError, match="zip"):
        links(GENESIS, [7, 8], [event])


def rows(
    positions: list[int], previous: str = GENESIS
) -> list[tuple[int, str, int, str, bytes, str]]:
    """Scanned rows (position, id as 32 hex digits, version, topic, state, link), linked."""
    made = []
    for position in positions:
        oid = uuid4()
        previous = link_of(previous, position, str(oid), 1, "t", b"{}")
        made.append((position, oid.hex, 1, "t", b"{}", previous))
    return made


def test_a_range_checked_whole_reports_its_last_event_and_stop() -> None:
    scanned = rows([1000, 1001, 1002])
    checked = _check(iter([scanned]), GENESIS, 1003, None)
    assert checked == Checked(3, 1002, str(scanned[-1][5]), 1003, False)


def test_a_range_whose_first_link_is_wrong_reports_no_event_checked() -> None:
    scanned = rows([1000, 1001])
    scanned[0] = (*scanned[0][:5], "0" * 64)
    checked = _check(iter([scanned]), GENESIS, 1002, None)
    assert (checked.count, checked.position, checked.previous) == (0, 0, GENESIS)
    assert (checked.stop, checked.failure) == (1000, (1000, CHANGED))


def test_the_kept_digest_is_met_at_its_position_by_value() -> None:
    scanned = rows(list(range(1000, 1003)))
    at = int("1001")  # as read from a kept digest: equal to the scanned position, not the same
    kept = (at, str(scanned[1][5]))
    assert _check(iter([scanned]), GENESIS, 1003, kept).kept_seen
    other = (at, "f" * 64)
    checked = _check(iter([scanned]), GENESIS, 1003, other)
    assert checked.failure == (1001, NOT_EXTENDED)
    assert (checked.count, checked.position, checked.stop) == (2, 1001, 1002)


def test_without_a_kept_digest_an_event_at_position_zero_is_just_an_event() -> None:
    scanned = rows([0, 1])
    checked = _check(iter([scanned]), GENESIS, 2, None)
    assert checked.failure is None and checked.count == 2 and not checked.kept_seen
