"""The chain's links, below the recorder: a link covers every part of the stored event, and
links are never made for positions and events that do not pair up. Found by mutation testing
(scripts/mutation.py)."""

from __future__ import annotations

from uuid import uuid4

import pytest
from eventsourcing.persistence import StoredEvent

from ledger.storage.chain import GENESIS, links


def test_links_refuse_positions_and_events_that_do_not_pair_up() -> None:
    event = StoredEvent(originator_id=uuid4(), originator_version=1, topic="t", state=b"{}")
    assert [p for p, _ in links(GENESIS, [7], [event])] == [7]
    with pytest.raises(ValueError, match="zip"):
        links(GENESIS, [7, 8], [event])
