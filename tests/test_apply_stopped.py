"""`apply` stopped by a database fault part way (here a trigger that fails every later insert
of an event, installed once the first batch is saved) names the line it stopped at and what
was committed before it. On SQLite the fault is an OperationalError that is not contention
(a missing table), so the batch is not re-run line by line. Found by mutation testing
(scripts/mutation.py)."""

from __future__ import annotations

import json
import sqlite3

import psycopg
import pytest

from ledger import Ledger
from ledger.importer import ApplyStopped, Importer
from tests.conftest import ADMIN

# a missing table whose name runs over 200 characters and over two lines
MISSING = "t" * 250 + "\nsecond line"
SQLITE_FAULT = (
    "CREATE TRIGGER fault BEFORE INSERT ON stored_events "
    f'BEGIN INSERT INTO "{MISSING}" VALUES (1); END'
)
POSTGRES_FAULT = (
    "CREATE FUNCTION fault() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION E'the disk is full %\\nsecond line', repeat('x', 300); END $$; "
    "CREATE TRIGGER fault BEFORE INSERT ON ledger_events FOR EACH ROW EXECUTE FUNCTION fault()"
)


def break_inserts(url: str) -> None:
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            conn.execute(SQLITE_FAULT)
        conn.close()
    else:
        with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as server:
            server.execute(POSTGRES_FAULT)


def test_a_fault_after_the_first_batch_stops_apply_at_the_next_line(led: Ledger, url: str) -> None:
    names = ["A", "A", "B", "C", "D"]  # the second A is rejected: the name is taken
    lines: list[tuple[int, str | bytes]] = [
        (n, json.dumps({"command": "create_account", "name": x})) for n, x in enumerate(names, 1)
    ]
    done: list[int] = []

    def progress(count: int) -> None:
        done.append(count)
        if len(done) == 1:
            break_inserts(url)

    with pytest.raises(ApplyStopped) as stopped:
        Importer(led, actor=ADMIN, batch_size=2).apply(lines, progress=progress)
    message = str(stopped.value)
    assert "\n" not in message
    # the problem is the error's first line, cut to 200 characters (PostgreSQL's runs on)
    problem = (
        ("no such table: main." + "t" * 250)[:200]
        if url.startswith("sqlite")
        else ("the disk is full " + "x" * 300)[:200]
    )
    assert message == (
        f"apply stopped at line 3 by a database problem ({problem}); the 2 lines before it "
        "were committed (applied 1, unchanged 0, rejected 1), none from line 3 on"
    )
    assert done == [2]
    assert led.account_id_for_name("A") is not None
    assert led.account_id_for_name("B") is None


# A batch of several events meets an event without its chain link (links are written after the
# batch's events): a constraint error, which apply takes for contention and runs the batch's
# lines one by one; then the third event of the run fails as it is written (a missing table would
# fail every insert: SQLite looks for it when it prepares the statement).
SQLITE_CLASH_THEN_FAULT = """
CREATE TRIGGER clash BEFORE INSERT ON stored_events
WHEN EXISTS (SELECT 1 FROM stored_events e
             WHERE NOT EXISTS (SELECT 1 FROM ledger_chain l WHERE l.position = e.rowid))
BEGIN SELECT RAISE(ABORT, 'a clash'); END;
CREATE TRIGGER fault BEFORE INSERT ON stored_events
WHEN (SELECT count(*) FROM stored_events) >= {third}
BEGIN SELECT json('not json'); END;
"""


@pytest.mark.parametrize("url", ["sqlite"], indirect=True)
def test_a_fault_in_a_batch_run_line_by_line_stops_apply_at_its_line(led: Ledger, url: str) -> None:
    names = ["A", "B", "C", "D", "E"]
    lines: list[tuple[int, str | bytes]] = [
        (n, json.dumps({"command": "create_account", "name": x})) for n, x in enumerate(names, 1)
    ]
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        [(count,)] = conn.execute("SELECT count(*) FROM stored_events").fetchall()
        conn.executescript(SQLITE_CLASH_THEN_FAULT.format(third=count + 2))
    conn.close()
    with pytest.raises(ApplyStopped) as stopped:
        Importer(led, actor=ADMIN, batch_size=5).apply(lines)
    assert str(stopped.value) == (
        "apply stopped at line 3 by a database problem (malformed JSON); the 2 lines "
        "before it were committed (applied 2, unchanged 0, rejected 0), none from line 3 on"
    )
    created = [x for x in names if led.account_id_for_name(x) is not None]
    assert created == ["A", "B"]


@pytest.mark.parametrize("url", ["sqlite"], indirect=True)
def test_a_fault_in_a_later_batch_run_line_by_line_names_its_own_line(
    led: Ledger, url: str
) -> None:
    names = ["A", "B", "C", "D", "E", "F"]
    lines: list[tuple[int, str | bytes]] = [
        (n, json.dumps({"command": "create_account", "name": x})) for n, x in enumerate(names, 1)
    ]

    def progress(count: int) -> None:
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            [(events,)] = conn.execute("SELECT count(*) FROM stored_events").fetchall()
            conn.executescript(SQLITE_CLASH_THEN_FAULT.format(third=events + 2))
        conn.close()

    # batches of three: the second (lines 4-6) clashes, runs line by line, and line 6 fails
    with pytest.raises(ApplyStopped) as stopped:
        Importer(led, actor=ADMIN, batch_size=3).apply(lines, progress=progress)
    assert str(stopped.value) == (
        "apply stopped at line 6 by a database problem (malformed JSON); the 5 lines "
        "before it were committed (applied 5, unchanged 0, rejected 0), none from line 6 on"
    )
    assert [x for x in names if led.account_id_for_name(x) is not None] == names[:5]
