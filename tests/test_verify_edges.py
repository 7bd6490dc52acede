"""What a verification reports at the edges: an empty log, with and without a kept digest, a
log whose very first event is gone (nothing verified before the break), and links forged at
position 0, below it and at the highest positions. Found by mutation testing
(scripts/mutation.py)."""

from __future__ import annotations

from uuid import UUID

import pytest
from click.testing import CliRunner

from ledger import Ledger
from ledger.audit import Digest, integrity
from ledger.audit.integrity import Verification
from ledger.cli import main
from ledger.storage import chain, chain_check
from ledger.storage.chain_check import CHANGED
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


@pytest.mark.parametrize("position", [-1, -(2**63)])
def test_a_link_forged_below_position_zero_is_found(led: Ledger, position: int) -> None:
    """The search for a link without its event has no lower bound: a link forged at -1 once
    passed as intact (the search started at 0)."""
    for role in ("admin", "consultant"):
        led.define_role(role, actor=ADMIN)
    raw(led, "INSERT INTO ledger_chain (position, hash) VALUES (?, ?)", position, "a" * 64)
    result = integrity.verify(led)
    assert (result.ok, result.events, result.head, result.first_bad_position) == (
        False,
        0,
        None,
        position,
    )
    shown = CliRunner().invoke(main, ["--db", led.url, "audit", "verify"])
    assert shown.exit_code == 1
    assert shown.stdout.strip() == (
        f"BROKEN at position {position}: a link without its event (the event was deleted or moved)"
    )


@pytest.mark.parametrize("position", [2**62, 2**63 - 1])
def test_a_link_forged_at_the_highest_positions_is_found(led: Ledger, position: int) -> None:
    """Nor has the search for links past the last event an upper bound (it stopped at 2**62)."""
    for role in ("admin", "consultant"):
        led.define_role(role, actor=ADMIN)
    raw(led, "INSERT INTO ledger_chain (position, hash) VALUES (?, ?)", position, "a" * 64)
    result = integrity.verify(led)
    assert (result.ok, result.events, result.first_bad_position) == (False, 2, position)
    assert result.head is not None and result.head.position == 2


def test_an_event_inserted_below_position_one_breaks_the_chain_at_one(led: Ledger) -> None:
    """An event written straight in below the log's start, with a link that holds from the
    genesis, is read first: the chain then breaks at position 1, whose link no longer follows.
    Without a kept digest no position is the kept one (a sentinel of -1 once was, and this
    reported a rewritten history at -1)."""
    for role in ("admin", "consultant"):
        led.define_role(role, actor=ADMIN)
    table, column = events_table(led)
    row = led.side.select_one(
        f"SELECT originator_id, topic, state FROM {table} WHERE {column} = ?", (1,)
    )
    assert row is not None
    originator_id, topic, state = UUID(str(row["originator_id"])), row["topic"], row["state"]
    raw(
        led,
        f"INSERT INTO {table} ({column}, originator_id, originator_version, topic, state) "
        "VALUES (?, ?, ?, ?, ?)",
        -1,
        row["originator_id"],
        1000,
        topic,
        state,
    )
    link = chain.link_of(chain.GENESIS, -1, str(originator_id), 1000, topic, bytes(state))
    raw(led, "INSERT INTO ledger_chain (position, hash) VALUES (?, ?)", -1, link)
    result = integrity.verify(led)
    assert (result.ok, result.events, result.first_bad_position, result.problem) == (
        False,
        1,
        1,
        CHANGED,
    )
    assert result.head is not None and (result.head.position, result.head.hash) == (-1, link)


def relink(led: Ledger) -> None:
    """Recompute every link from the events as they now are, as a forger could."""
    table, column = events_table(led)
    rows = led.side.select_all(
        f"SELECT {column} AS position, originator_id, originator_version, topic, state "
        f"FROM {table} ORDER BY {column}",
        (),
    )
    previous = chain.GENESIS
    for row in rows:
        originator_id = str(UUID(str(row["originator_id"])))
        previous = chain.link_of(
            previous,
            row["position"],
            originator_id,
            row["originator_version"],
            row["topic"],
            bytes(row["state"]),
        )
        raw(led, "UPDATE ledger_chain SET hash = ? WHERE position = ?", previous, row["position"])


def test_a_link_without_its_event_after_a_gap_counts_the_events_before_it(led: Ledger) -> None:
    """Events 2 and 4 deleted and the chain re-linked over the rest, link 2 deleted too but
    link 4 left: the orphan at 4 has two events before it (1 and 3), the last at 3."""
    for role in ("admin", "consultant", "account-admin", "auditor", "viewer"):
        led.define_role(role, actor=ADMIN)
    table, column = events_table(led)
    for position in (2, 4):
        raw(led, f"DELETE FROM {table} WHERE {column} = ?", position)
    raw(led, "DELETE FROM ledger_chain WHERE position = ?", 2)
    relink(led)
    result = integrity.verify(led)
    link_3 = led.side.select_one("SELECT hash FROM ledger_chain WHERE position = ?", (3,))
    assert (result.ok, result.events, result.first_bad_position) == (False, 2, 4)
    assert result.head is not None and (result.head.position, result.head.hash) == (
        3,
        link_3 and link_3["hash"],
    )


@pytest.mark.parametrize("url", ["postgres"], indirect=True)
def test_the_scan_on_postgresql_merges_the_two_ordered_index_scans(led: Ledger) -> None:
    """Planned for a cursor's first rows, the scan probed the links' index once per event (a
    nested loop: 10x the server's work of the events' scan alone). It merges the two ordered
    index scans, the links' bounded to the range as the events' is (a worker's range would
    otherwise read every link before it)."""
    for role in ("admin", "consultant"):
        led.define_role(role, actor=ADMIN)
    source = led.side.chain_source()
    with chain_check._open(source) as log:
        assert isinstance(log, chain_check._PostgresLog)
        for setting in chain_check.SCAN_PLAN:
            log.connection.execute(setting)
        rows = log.connection.execute(
            f"EXPLAIN DECLARE planned CURSOR FOR {source.scan}", {"start": 2, "stop": 3}
        ).fetchall()
    plan = "\n".join(row[0] for row in rows)
    assert "Merge Left Join" in plan and "Nested Loop" not in plan, plan
    chain_scan = plan[plan.index("ledger_chain_pkey") :]
    assert "Cond: ((\"position\" >= '2'::smallint) AND (\"position\" < '3'" in chain_scan, plan
    assert integrity.verify(led).ok
