"""Erasure is complete on disk when `erase_user` returns: the raw pages of the database (SQLite:
the file, its WAL and shared-memory index; PostgreSQL: every block of every table and index,
read with pageinspect) hold no trace of the erased user's email, username, login IP, key, or
the keyed hashes of the email and username; while another process holds the database open."""

from __future__ import annotations

import base64
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from uuid import UUID

import psycopg
import pytest

from ledger import Ledger, LedgerError
from ledger.storage import side_tables as side
from projections import ReadModel
from tests.helpers import event_names

ADMIN = "cli:test-admin"
EMAIL = "Zelda.Quixotic4711@Example.ORG"
STORED_EMAIL = "Zelda.Quixotic4711@example.org"  # normalised: the domain in lower case
USERNAME = "ZqUsername4711"
IP = "198.51.100.173"

# Opens the database the way a read API process does, then stays idle with it open.
IDLE_READER = """
import sys
from projections import ReadModel
rm = ReadModel(sys.argv[1])
assert rm.get_user(sys.argv[2]) is not None
print("ready", flush=True)
sys.stdin.read()
"""
# Opens a read transaction and keeps it open: it could still read the deleted rows.
OPEN_TRANSACTION = """
import sqlite3, sys
import psycopg
url = sys.argv[1]
if url.startswith("sqlite"):
    conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    conn.execute("BEGIN")
else:
    conn = psycopg.connect(url.replace("+psycopg", ""))
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
conn.execute("SELECT count(*) FROM ledger_user_keys").fetchall()
print("ready", flush=True)
sys.stdin.read()
"""


@contextmanager
def process_holding(script: str, *args: str) -> Iterator[None]:
    """Another process, holding the database open until the block ends."""
    process = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parent.parent,
    )
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        yield
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=30)


def traces(led: Ledger, user_id: UUID) -> dict[str, bytes]:
    """What must not outlive the erasure, each as the bytes to look for."""
    row = led.side.select_one(side.SELECT_KEY_FOR_USER, (str(user_id),))
    assert row is not None
    secret = row["secret"]
    found = {"key (base64)": secret.encode(), "key (raw)": base64.b64decode(secret)}
    for name, value in (("email", EMAIL), ("username", USERNAME), ("ip", IP)):
        found[name] = value.encode()
        found[f"{name} (casefolded)"] = value.casefold().encode()
    found["email (stored)"] = STORED_EMAIL.encode()
    found["email claim"] = led._claim_key("email", EMAIL).encode()
    found["username claim"] = led._claim_key("username", USERNAME).encode()
    return found


def on_disk(url: str, needles: dict[str, bytes]) -> set[str]:
    """The names of the needles found in the raw storage of the database."""
    pages = sqlite_files(url) if url.startswith("sqlite") else postgres_pages(url)
    return {name for name, needle in needles.items() if any(needle in page for page in pages)}


def sqlite_files(url: str) -> list[bytes]:
    path = Path(url.removeprefix("sqlite:///"))
    files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
    return [file.read_bytes() for file in files if file.exists()]


def postgres_pages(url: str) -> list[bytes]:
    """Every block of every table, TOAST table and index of the database, catalogs included."""
    pages = []
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pageinspect")
        relations = conn.execute(
            "SELECT oid::regclass::text, pg_relation_size(oid) / current_setting('block_size')::int"
            " FROM pg_class WHERE relkind IN ('r', 'i', 't') AND relpersistence = 'p'"
        ).fetchall()
        for relation, blocks in relations:
            for block in range(blocks):
                page = conn.execute("SELECT get_raw_page(%s, %s)", (relation, block)).fetchone()
                assert page is not None
                pages.append(bytes(page[0]))
    return pages


@pytest.fixture
def ann(url: str) -> Iterator[tuple[Ledger, UUID]]:
    """A user with a distinctive email, username and login IP, projected into the read models."""
    led = Ledger(url)
    acme = led.create_account("Acme", actor=ADMIN)
    user_id = led.create_user(
        EMAIL, account_id=acme, actor=ADMIN, username=USERNAME, password="correct horse"
    )
    led.record_login(user_id, ip=IP)
    rm = ReadModel(url)
    rm.catch_up()
    user = rm.get_user(user_id)
    assert user is not None and (user.email, user.username) == (STORED_EMAIL, USERNAME)
    rm.close()
    try:
        yield led, user_id
    finally:
        led.close()


def test_erase_user_leaves_no_trace_on_disk(url: str, ann: tuple[Ledger, UUID]) -> None:
    led, user_id = ann
    needles = traces(led, user_id)
    # before the erasure, the key and the hashes are there (the search finds them), and
    # nothing in the open, ever: the read models hold the data sealed, as the events do
    assert on_disk(url, needles) == {"key (base64)", "email claim", "username claim"}
    with process_holding(IDLE_READER, url, str(user_id)):
        assert led.erase_user(user_id, actor=ADMIN, reason="GDPR request 4711") is True
        assert on_disk(url, needles) == set()
        rm = ReadModel(url)
        rm.catch_up()
        user = rm.get_user(user_id)
        assert user is not None and (user.email, user.username) == ("[erased]", "[erased]")
        rm.close()
        assert on_disk(url, needles) == set()


def test_an_open_transaction_delays_the_wipe_and_says_so(
    url: str, ann: tuple[Ledger, UUID]
) -> None:
    led, user_id = ann
    needles = traces(led, user_id)
    led.wipe_timeout = 0.5
    with process_holding(OPEN_TRANSACTION, url):
        with pytest.raises(LedgerError, match=r"is recorded, but .* not yet wiped") as error:
            led.erase_user(user_id, actor=ADMIN, reason="GDPR request 4711")
        assert "erase user" in str(error.value)
        assert event_names(led)[-1] == "UserErased"  # the erasure itself stands
    count = len(event_names(led))
    # once the transaction has ended, erasing again records nothing and finishes the wipe
    # (with the usual patience: the wipe waits for the older transactions of the whole
    # server, and other tests run beside this one)
    led.wipe_timeout = Ledger.wipe_timeout
    assert led.erase_user(user_id, actor=ADMIN, reason="GDPR request 4711") is False
    assert len(event_names(led)) == count
    assert on_disk(url, needles) == set()


def test_projected_by_the_cli_the_read_models_hold_nothing_in_the_open(url: str) -> None:
    from click.testing import CliRunner

    from ledger.cli import main

    led = Ledger(url)
    try:
        acme = led.create_account("Acme", actor=ADMIN)
        led.create_user(EMAIL, account_id=acme, actor=ADMIN, username=USERNAME)
        plain = {
            name: value.encode()
            for name, value in (("email", STORED_EMAIL), ("username", USERNAME))
        }
        for command in (["project"], ["query", "users"], ["audit", "report", "access-review"]):
            result = CliRunner().invoke(main, ["--db", url, *command])
            assert result.exit_code == 0, result.output
        assert STORED_EMAIL in result.output  # opened for the reader
        assert on_disk(url, plain) == set()
    finally:
        led.close()


# Erases the user, and is killed (SIGKILL) after the erasure commits, before the wipe.
KILLED_BEFORE_THE_WIPE = """
import os, signal, sys
from ledger import Ledger
led = Ledger(sys.argv[1])
led.side.wipe_deleted = lambda timeout: os.kill(os.getpid(), signal.SIGKILL)
led.erase_user(sys.argv[2], actor="cli:test-admin", reason="GDPR request 4711")
"""


def test_an_erasure_killed_before_its_wipe_is_finished_by_erasing_again(
    url: str, ann: tuple[Ledger, UUID]
) -> None:
    led, user_id = ann
    needles = traces(led, user_id)
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_BEFORE_THE_WIPE, url, str(user_id)],
        cwd=Path(__file__).parent.parent,
        capture_output=True,
        text=True,
    )
    assert killed.returncode == -9, killed.stderr
    assert event_names(led)[-1] == "UserErased"  # the erasure itself was committed
    count = len(event_names(led))
    assert led.erase_user(user_id, actor=ADMIN, reason="GDPR request 4711") is False
    assert len(event_names(led)) == count
    assert on_disk(url, needles) == set()
