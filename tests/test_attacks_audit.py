"""Attacks on the audit trail from outside: the database edited directly, outputs aimed at
files they must not touch. Each test is an attack that once succeeded."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from ledger import Ledger
from ledger.storage import chain
from projections import ReadModel
from tests.conftest import ADMIN
from tests.helpers import tmpfs
from tests.test_audit import Clock, events_table, one_line_error, raw, shell, verify

SQLITE_ONLY = pytest.mark.parametrize("url", ["sqlite"], indirect=True)  # its ledger is a file


@pytest.fixture
def history(url: str) -> Ledger:
    """Roles, an account, three users with grants and logins, a revocation, an erasure."""
    led = Ledger(url, clock=Clock())
    for role in ("admin", "consultant"):
        led.define_role(role, actor=ADMIN)
    acme = led.create_account("Acme", actor=ADMIN)
    users = [
        led.create_user(f"u{i}@acme.org", account_id=acme, actor=ADMIN, roles=["admin"])
        for i in range(3)
    ]
    for user in users:
        led.record_login(user, ip="192.0.2.1")
    led.revoke_role(users[1], "admin", actor=ADMIN, reason="JIRA-2")
    led.erase_user(users[2], actor=ADMIN, reason="GDPR")
    return led


def sqlite_path(led: Ledger) -> Path:
    assert led.url.startswith("sqlite"), "the ledger is a file on SQLite only"
    return Path(led.url.removeprefix("sqlite:///"))


def files_of(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}


def report_into(led: Ledger, out: Path) -> Any:
    return shell("--db", led.url, "audit", "report", "privileged", "--out", str(out))


def replay_into(led: Ledger, out: Path) -> Any:
    return shell("--db", led.url, "audit", "replay", "--until", "2026-01-03", "--out", str(out))


@SQLITE_ONLY
def test_a_report_never_overwrites_the_ledger_or_its_write_ahead_log(history: Ledger) -> None:
    path = sqlite_path(history)
    events = history.recorder.max_notification_id()
    for out in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        before = files_of(path.parent)
        one_line_error(report_into(history, out), "SQLite", "never overwrites")
        assert files_of(path.parent) == before
    assert shell("--db", history.url, "audit", "verify").stdout.startswith(f"intact: {events}")


def test_a_report_never_overwrites_a_replay_file(history: Ledger, tmp_path: Path) -> None:
    out = tmp_path / "then.db"
    assert replay_into(history, out).exit_code == 0
    before = out.read_bytes()
    one_line_error(report_into(history, out), "is a SQLite database")
    assert out.read_bytes() == before


@SQLITE_ONLY
def test_a_replay_is_never_named_as_the_ledgers_journal(history: Ledger) -> None:
    """SQLite takes `ledger.db-journal` for a hot journal of ledger.db, and deletes it the
    next time the ledger is opened: the replay would be reported written, then vanish."""
    path = sqlite_path(history)
    journal = Path(f"{path}-journal")
    one_line_error(replay_into(history, journal), "companion file", str(path))
    assert not journal.exists()


def test_a_replay_never_replaces_a_symbolic_link_it_did_not_make(
    history: Ledger, tmp_path: Path
) -> None:
    link = tmp_path / "then.db"
    link.symlink_to(tmp_path / "elsewhere.db")  # dangling: nothing to read behind it
    one_line_error(replay_into(history, link), "not a replay file", "untouched")
    assert link.is_symlink() and not (tmp_path / "elsewhere.db").exists()


def test_an_event_slipped_in_below_the_first_position_is_found(history: Ledger) -> None:
    """The aggregates load every row of theirs, whatever its position: a grant written at
    position 0 changed what the write side decides while verify called the log intact."""
    table, column = events_table(history)
    u1 = history.resolve_user("u1@acme.org")
    ids = (u1.hex if history.url.startswith("sqlite") else str(u1),)
    grant = history.side.select_one(
        f"SELECT topic, state FROM {table} WHERE topic LIKE ? ORDER BY {column} LIMIT 1",
        ("%RoleGranted",),
    )
    version = history.side.select_one(
        f"SELECT max(originator_version) AS v FROM {table} WHERE originator_id = ?", ids
    )
    assert grant is not None and version is not None
    for position in (0, -7):
        raw(
            history,
            f"INSERT INTO {table} ({column}, originator_id, originator_version, topic, state) "
            "VALUES (?, ?, ?, ?, ?)",
            position,
            *ids,
            version["v"] + 1,
            grant["topic"],
            bytes(grant["state"]),
        )
        assert verify(history) == (False, position)
        found = shell("--db", history.url, "audit", "verify")
        assert found.exit_code == 1 and f"BROKEN at position {position}" in found.stdout
        # a forged link for it from the genesis: the first real event no longer follows
        link = chain.link_of(
            chain.GENESIS, position, str(u1), version["v"] + 1, grant["topic"], grant["state"]
        )
        raw(history, "INSERT INTO ledger_chain (position, hash) VALUES (?, ?)", position, link)
        assert not verify(history)[0]
        raw(history, "DELETE FROM ledger_chain WHERE position = ?", position)
        raw(history, f"DELETE FROM {table} WHERE {column} = ?", position)
    assert verify(history) == (True, None)


def test_a_replay_into_a_read_only_folder_is_one_line(history: Ledger, tmp_path: Path) -> None:
    def refused(folder: Path) -> None:
        one_line_error(replay_into(history, folder / "then.db"), "cannot be written")
        assert list(folder.iterdir()) == []

    folder = tmp_path / "read-only"
    if os.geteuid() == 0:  # root writes through permissions: a read-only mount stops it
        with tmpfs(folder, read_only=True):
            refused(folder)
        return
    folder.mkdir()
    folder.chmod(0o555)
    try:
        refused(folder)
    finally:
        folder.chmod(0o755)


@pytest.mark.parametrize("removed", ["ledger_chain", "events"])
def test_no_digest_of_a_chain_that_is_not_the_logs(history: Ledger, removed: str) -> None:
    """Links all deleted: the digest said position 0 (the empty log) over a log of events;
    events all deleted: it gave the head of a log that was gone."""
    table, _ = events_table(history)
    raw(history, f"DELETE FROM {table if removed == 'events' else removed}")
    one_line_error(shell("--db", history.url, "audit", "digest"), "no digest", "position")
    one_line_error(shell("--db", history.url, "audit", "report", "privileged"), "NOT VERIFIED")


def test_reports_never_show_values_edited_into_the_read_models(history: Ledger) -> None:
    """The chain proves the events, not the read-model tables: a revocation undone and an
    actor renamed there appeared in reports stamped with the verified head."""
    live = ReadModel(history.url)
    live.catch_up()
    live.close()
    raw(history, "UPDATE role_grants SET revoked_at = NULL WHERE role = ?", "admin")
    raw(history, "UPDATE audit_log SET actor = ? WHERE event = ?", "cli:mallory", "RoleRevoked")
    found = shell("--db", history.url, "audit", "check")
    assert found.exit_code == 1 and "cli:mallory" in found.stdout
    shown = shell(
        "--db", history.url, "audit", "report", "all", "--format", "json",
        "--since", "2026-01-01", "--until", "2026-02-01", "--at", "2026-02-01",
    )  # fmt: skip
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.stdout)
    assert data["verified"] is not None
    admins = {row["email"] for row in data["reports"]["privileged"] if row["role"] == "admin"}
    assert admins == {"u0@acme.org"}
    actors = {row["actor"] for row in data["reports"]["role-changes"]}
    assert actors == {ADMIN}
    html_page = shell("--db", history.url, "audit", "report", "all", "--format", "html")
    assert html_page.exit_code == 0 and "cli:mallory" not in html_page.stdout
