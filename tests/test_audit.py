"""The compliance audit: a tamper-evident chain, point-in-time replay, the live-versus-replay
check, and the reports. The adversarial tests edit the database directly."""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock
from uuid import UUID

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from ledger import Ledger, ValidationError
from ledger.audit import Audit, Digest, NotVerified, integrity
from ledger.cli import main
from ledger.storage import chain, chain_check, replay_file
from ledger.storage.side_tables import SideWrite
from projections import ReadModel
from tests.conftest import ADMIN

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(hours=6)
        return self.now


@pytest.fixture
def history(url: str) -> Ledger:
    """28 events, one command every six hours from T0: roles, an account, four users (at
    +30h, +36h, +42h, +48h) with logins and grants, a revocation, a leaver, an erasure."""
    led = Ledger(url, clock=Clock())
    for role in ("admin", "account-admin", "consultant"):
        led.define_role(role, actor=ADMIN)
    acme = led.create_account("Acme", actor=ADMIN)
    users = [
        led.create_user(f"u{i}@acme.org", account_id=acme, actor=ADMIN, roles=["admin"])
        for i in range(4)
    ]
    for user in users:
        led.record_login(user, ip="192.0.2.1")
        led.grant_role(user, "consultant", actor=ADMIN, reason="JIRA-1")
    led.revoke_role(users[1], "admin", actor=ADMIN)
    led.deactivate_user(users[2], actor=ADMIN, reason="left")
    led.erase_user(users[3], actor=ADMIN, reason="GDPR")
    return led


def events_table(led: Ledger) -> tuple[str, str]:
    return (
        ("stored_events", "rowid")
        if led.url.startswith("sqlite")
        else ("ledger_events", "notification_id")
    )


def raw(led: Ledger, sql: str, *params: object) -> None:
    led.side.write_side([SideWrite(sql, tuple(params))])


def state_at(led: Ledger, position: int) -> bytes:
    table, column = events_table(led)
    row = led.side.select_one(f"SELECT state FROM {table} WHERE {column} = ?", (position,))
    assert row is not None
    return bytes(row["state"])


def verify(led: Ledger, kept: Digest | None = None) -> tuple[bool, int | None]:
    """Verify in one process, then split into three ranges checked side by side (28 events:
    positions 1-9 here, 10-18 and 19-28 in two workers): both must find the same."""
    results = []
    for processes in ("1", "3"):
        with (
            mock.patch.dict(os.environ, {integrity.PROCESSES_VARIABLE: processes}),
            Audit(led.url) as audit,
        ):
            results.append(audit.verify(kept))
    alone, split = results
    assert split == alone
    return alone.ok, alone.first_bad_position


def test_an_untouched_log_verifies_with_and_without_a_digest(history: Ledger) -> None:
    with Audit(history.url) as audit:
        kept = audit.digest()
        result = audit.verify(kept)
    assert result.ok and result.events == kept.position == history.recorder.max_notification_id()
    assert result.summary().startswith("intact:")
    assert verify(history) == (True, None)


def test_a_flipped_byte_is_found(history: Ledger) -> None:
    table, column = events_table(history)
    state = bytearray(state_at(history, 7))
    state[20] ^= 0x01
    raw(history, f"UPDATE {table} SET state = ? WHERE {column} = ?", bytes(state), 7)
    assert verify(history) == (False, 7)


def test_a_deleted_event_is_found(history: Ledger) -> None:
    table, column = events_table(history)
    raw(history, f"DELETE FROM {table} WHERE {column} = ?", 9)
    assert verify(history) == (False, 9)
    raw(history, "DELETE FROM ledger_chain WHERE position = ?", 9)  # and its link too
    assert verify(history) == (False, 10)


def test_a_break_reports_what_verified_before_it(history: Ledger) -> None:
    assert int(history.recorder.max_notification_id()) > 15
    table, column = events_table(history)
    raw(history, f"DELETE FROM {table} WHERE {column} IN (?, ?)", 9, 15)
    with Audit(history.url) as audit:
        result = audit.verify()
    eighth = history.side.select_one("SELECT hash FROM ledger_chain WHERE position = ?", (8,))
    assert eighth is not None
    assert (result.ok, result.first_bad_position, result.events) == (False, 9, 8)
    assert result.head is not None and (result.head.position, result.head.hash) == (
        8,
        eighth["hash"],
    )
    assert result.problem is not None and "link without its event" in result.problem


def test_a_deleted_last_event_is_found_by_its_link(history: Ledger) -> None:
    table, column = events_table(history)
    last = int(history.recorder.max_notification_id())
    raw(history, f"DELETE FROM {table} WHERE {column} = ?", last)
    assert verify(history) == (False, last)  # the link outlives it


def test_verify_reads_the_log_in_pages(history: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chain_check, "PAGE", 5)  # 28 events: six pages
    with Audit(history.url) as audit:
        result = audit.verify()
        head = audit.digest()
    assert result.ok and result.events == 28
    assert result.head is not None and (result.head.position, result.head.hash) == (
        head.position,
        head.hash,
    )
    raw(history, "UPDATE ledger_chain SET hash = ? WHERE position = ?", "0" * 64, 23)
    assert verify(history) == (False, 23)


def test_an_inserted_event_is_found(history: Ledger) -> None:
    table, _ = events_table(history)
    last = int(history.recorder.max_notification_id())
    forged_id = "0" * 31 + "1" if history.url.startswith("sqlite") else str(UUID(int=1))
    raw(
        history,
        f"INSERT INTO {table} (originator_id, originator_version, topic, state) "
        "VALUES (?, 1, ?, ?)",
        forged_id,
        "ledger.domain.roles:Role.RoleDefined",
        state_at(history, 1),
    )
    assert verify(history) == (False, last + 1)


def test_swapped_events_are_found(history: Ledger) -> None:
    table, column = events_table(history)
    raw(history, f"UPDATE {table} SET {column} = -1 WHERE {column} = 12")
    raw(history, f"UPDATE {table} SET {column} = 12 WHERE {column} = 13")
    raw(history, f"UPDATE {table} SET {column} = 13 WHERE {column} = -1")
    assert verify(history) == (False, 12)


def test_a_corrupted_link_is_found(history: Ledger) -> None:
    raw(history, "UPDATE ledger_chain SET hash = ? WHERE position = ?", "f" * 64, 5)
    assert verify(history) == (False, 5)


def test_truncation_is_found_by_a_kept_digest(history: Ledger) -> None:
    with Audit(history.url) as audit:
        kept = audit.digest()
    table, column = events_table(history)
    raw(history, f"DELETE FROM {table} WHERE {column} > ?", kept.position - 2)
    raw(history, "DELETE FROM ledger_chain WHERE position > ?", kept.position - 2)
    assert verify(history) == (True, None)  # a consistent, shorter chain ...
    ok, position = verify(history, kept)  # ... that no longer reaches the kept head
    assert not ok and position == kept.position - 2


def test_a_rewritten_tail_with_fresh_links_is_found_by_a_kept_digest(history: Ledger) -> None:
    with Audit(history.url) as audit:
        kept = audit.digest()
    table, column = events_table(history)
    position = kept.position - 1
    forged = state_at(history, position).replace(b"GDPR", b"ok!!")
    raw(history, f"UPDATE {table} SET state = ? WHERE {column} = ?", forged, position)
    # Recompute the links from the rewritten event on, as a careful forger would.
    previous = history.side.select_one(
        "SELECT hash FROM ledger_chain WHERE position = ?", (position - 1,)
    )
    assert previous is not None
    notifications = history.recorder.select_notifications(start=position, limit=10)
    for position_now, link in chain.links(
        previous["hash"], [n.id for n in notifications], notifications
    ):
        raw(history, "UPDATE ledger_chain SET hash = ? WHERE position = ?", link, position_now)
    assert verify(history) == (True, None)
    assert verify(history, kept) == (False, kept.position)


def test_erasure_never_breaks_the_chain(history: Ledger) -> None:
    with Audit(history.url) as audit:
        kept = audit.digest()
    ann = history.create_user(
        "ann@acme.org", account_id=history.account_id_for_name("Acme"), actor=ADMIN
    )
    history.record_login(ann, ip="192.0.2.99")
    history.erase_user(ann, actor=ADMIN, reason="GDPR 2")
    assert verify(history, kept) == (True, None)


def test_verify_and_digest_from_the_shell(history: Ledger, tmp_path: Path) -> None:
    runner = CliRunner()
    digest = runner.invoke(main, ["--db", history.url, "audit", "digest"])
    assert digest.exit_code == 0
    kept = tmp_path / "digest.json"
    kept.write_text(digest.stdout)
    assert set(json.loads(digest.stdout)) == {"position", "hash", "time"}
    ok = runner.invoke(main, ["--db", history.url, "audit", "verify", "--digest", str(kept)])
    assert ok.exit_code == 0 and ok.stdout.startswith("intact:")
    raw(history, "UPDATE ledger_chain SET hash = ? WHERE position = ?", "0" * 64, 3)
    bad = runner.invoke(main, ["--db", history.url, "audit", "verify", "--digest", str(kept)])
    assert bad.exit_code == 1 and "BROKEN at position 3" in bad.stdout
    kept.write_text("not a digest")
    wrong = runner.invoke(main, ["--db", history.url, "audit", "verify", "--digest", str(kept)])
    assert wrong.exit_code == 1 and "not a digest" in wrong.stderr


def test_replay_builds_the_read_models_as_they_stood(history: Ledger, tmp_path: Path) -> None:
    live = ReadModel(history.url)
    live.catch_up()
    instant = T0 + timedelta(days=3)
    out = tmp_path / "replay.db"
    with Audit(history.url) as audit:
        count = audit.replay(instant, out)
    assert 0 < count < history.recorder.max_notification_id()
    then = ReadModel(f"sqlite:///{out}")
    try:
        users = live.list_users(include_inactive=True)
        past_users = then.list_users(include_inactive=True)
        assert {u.id for u in past_users} == {u.id for u in users if u.created_at <= instant}
        for user in past_users:
            for role in ("admin", "consultant"):
                assert then.has_role(user.id, role) == live.has_role(user.id, role, at=instant)
            assert then.is_active(user.id) == live.is_active(user.id, at=instant)
        later = then.audit_log()
        assert later["timestamp"].max() <= instant
        assert then.list_roles() == live.list_roles()
    finally:
        then.close()
        live.close()


def test_replay_from_the_shell_is_independent_of_the_live_read_models(
    history: Ledger, tmp_path: Path
) -> None:
    out = tmp_path / "then.db"
    result = CliRunner().invoke(
        main,
        [
            "--db",
            history.url,
            "audit",
            "replay",
            "--until",
            "2026-01-02T13:00:00+00:00",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    then = ReadModel(f"sqlite:///{out}")
    try:
        assert [u.email for u in then.users_with_role("admin")] == ["u0@acme.org", "u1@acme.org"]
    finally:
        then.close()


def test_check_compares_live_read_models_with_a_replay(history: Ledger) -> None:
    runner = CliRunner()
    fine = runner.invoke(main, ["--db", history.url, "audit", "check"])
    assert fine.exit_code == 0, fine.output
    assert "equal a fresh replay" in fine.stdout
    live = ReadModel(history.url)
    with live.engine.begin() as conn:
        conn.execute(text("UPDATE users SET login_count = login_count + 5"))
    live.close()
    broken = runner.invoke(main, ["--db", history.url, "--json", "audit", "check"])
    assert broken.exit_code == 1
    found = json.loads(broken.stdout)["differences"]
    assert len(found) == 1 and found[0].startswith("users:")


def test_reports(history: Ledger) -> None:
    with Audit(history.url) as audit:
        review = audit.report("access-review", at=T0 + timedelta(days=30))
        assert len(review) == 4
        active = review.set_index("email")["active"].to_dict()
        assert active == {
            "u0@acme.org": True,
            "u1@acme.org": True,
            "u2@acme.org": False,
            "[erased]": False,
        }
        roles = review.set_index("email")["roles"].to_dict()
        assert roles["u0@acme.org"] == "admin;consultant"
        assert roles["u1@acme.org"] == "consultant" and roles["u2@acme.org"] == ""
        assert review["last_login_at"].notna().all()
        early = audit.report("access-review", at=T0 + timedelta(hours=33))
        assert list(early["email"]) == ["u0@acme.org"]

        changes = audit.report("role-changes", since=T0, until=T0 + timedelta(days=30))
        assert list(changes["change"]).count("revoked") == 1
        grant = changes[changes["reason"] == "JIRA-1"].iloc[0]
        assert (grant["role"], grant["actor"], grant["change"]) == ("consultant", ADMIN, "granted")
        jml = audit.report("joiners-movers-leavers", since=T0, until=T0 + timedelta(days=30))
        kinds = jml.groupby("kind")["user_id"].nunique().to_dict()
        assert kinds == {"joiner": 4, "leaver": 2, "mover": 4}

        privileged = audit.report("privileged", at=T0 + timedelta(days=30))
        assert sorted(zip(privileged["role"], privileged["email"], strict=True)) == [
            ("admin", "u0@acme.org"),
            ("consultant", "u0@acme.org"),
            ("consultant", "u1@acme.org"),
        ]
        dormant = audit.report("dormant", days=5, at=T0 + timedelta(days=30))
        assert set(dormant["email"]) == {"u0@acme.org", "u1@acme.org"}
        assert audit.report("dormant", days=90, at=T0 + timedelta(days=30)).empty

        csv = audit.render(["privileged"], "csv", at=T0 + timedelta(days=30))
        evidence, header = csv.splitlines()[:2], csv.splitlines()[2]
        assert evidence[0].startswith("# integrity chain verified")
        assert evidence[1].startswith("# no signed digest is stored")
        assert header == "role,user_id,email,account,since"
        data = json.loads(audit.render(["role-changes", "dormant"], "json", since=T0))
        assert set(data["reports"]) == {"role-changes", "dormant"}


def test_a_process_count_that_is_not_a_number_is_rejected(
    history: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(integrity.PROCESSES_VARIABLE, "two")
    with Audit(history.url) as audit, pytest.raises(ValidationError, match="whole number"):
        audit.verify()


def test_verify_splits_a_long_log_over_the_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(integrity.PROCESSES_VARIABLE, raising=False)
    monkeypatch.setattr(integrity.os, "cpu_count", lambda: 8)
    assert integrity.processes_for(integrity.PARALLEL_FROM - 1) == 1
    assert integrity.processes_for(integrity.PARALLEL_FROM) == 4
    monkeypatch.setattr(integrity.os, "cpu_count", lambda: 2)
    assert integrity.processes_for(10**6) == 2
    monkeypatch.setenv(integrity.PROCESSES_VARIABLE, "3")
    assert integrity.processes_for(10) == 3


def test_a_failing_worker_fails_verify_with_its_error(
    history: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(integrity.PROCESSES_VARIABLE, "2")
    start_worker = integrity._start_worker

    def broken(source: chain_check.Source, *args: Any) -> Any:
        bad = dataclasses.replace(source, scan=source.scan.replace("ledger_chain", "no_such_table"))
        return start_worker(bad, *args)

    monkeypatch.setattr(integrity, "_start_worker", broken)
    with Audit(history.url) as audit, pytest.raises(RuntimeError, match="no_such_table"):
        audit.verify()


# -- every output tells the truth ---------------------------------------------------------------


def shell(*args: str) -> Any:
    """`ledger ARGS`; a rejected input must be one line on stderr, never a traceback."""
    result = CliRunner().invoke(main, list(args))
    if result.exit_code != 0:
        assert result.exception is None or isinstance(result.exception, SystemExit), result.output
        assert "Traceback" not in result.output
    return result


def one_line_error(result: Any, *words: str) -> None:
    assert result.exit_code == 1, result.output
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


def files_in(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}


def replay_into(led: Ledger, out: Path, until: str = "2026-01-02T13:00:00+00:00") -> Any:
    return shell("--db", led.url, "audit", "replay", "--until", until, "--out", str(out))


def test_replay_never_overwrites_a_file_it_did_not_make(history: Ledger, tmp_path: Path) -> None:
    folder = tmp_path / "files"
    folder.mkdir()
    kept = Ledger(f"sqlite:///{folder / 'kept.db'}")  # a ledger holding events
    kept.define_role("admin", actor=ADMIN)
    kept.close()
    (folder / "notes.db").write_text("not a database")
    (folder / "stray.db-wal").write_bytes(b"\0" * 64)  # a write-ahead log without its file
    before = files_in(folder)
    for name in ("kept.db", "notes.db", "stray.db"):
        one_line_error(replay_into(history, folder / name), "is not a replay file", "untouched")
    assert files_in(folder) == before
    kept = Ledger(f"sqlite:///{folder / 'kept.db'}")
    try:
        assert kept.recorder.max_notification_id() == 1
        assert verify(kept) == (True, None)
    finally:
        kept.close()
    one_line_error(replay_into(history, tmp_path / "no-such-folder" / "x.db"), "does not exist")


@pytest.mark.parametrize("url", ["sqlite"], indirect=True)  # the live ledger as a file
def test_replay_refuses_the_live_ledger_as_its_out(history: Ledger) -> None:
    events = history.recorder.max_notification_id()
    one_line_error(replay_into(history, Path(history.url.removeprefix("sqlite:///"))))
    assert history.recorder.max_notification_id() == events
    assert verify(history) == (True, None)
    assert shell("--db", history.url, "audit", "verify").stdout.startswith(f"intact: {events}")


def test_replay_replaces_a_replay_it_made(history: Ledger, tmp_path: Path) -> None:
    out = tmp_path / "then.db"
    assert replay_into(history, out).exit_code == 0
    assert replay_into(history, out, "2026-01-01T07:00:00+00:00").exit_code == 0
    then = ReadModel(f"sqlite:///{out}")
    try:
        assert [role.name for role in then.list_roles()] == ["admin"]  # the second replay's
    finally:
        then.close()
    assert sorted(path.name for path in tmp_path.iterdir() if "then" in path.name) == ["then.db"]


def test_an_empty_log_is_not_called_intact(url: str, tmp_path: Path) -> None:
    Ledger(url).close()
    fresh = shell("--db", url, "audit", "verify")
    assert fresh.exit_code == 0 and fresh.stdout.strip() == "empty log: nothing to verify"
    digest = tmp_path / "digest.json"
    digest.write_text(shell("--db", url, "audit", "digest").stdout)
    with_digest = shell("--db", url, "audit", "verify", "--digest", str(digest))
    assert with_digest.exit_code == 1
    assert with_digest.stdout.startswith("empty log: nothing to verify")
    with Audit(url) as audit:
        assert not audit.verify(audit.digest()).ok


def test_a_digest_is_checked_before_it_is_believed(history: Ledger, tmp_path: Path) -> None:
    digest = tmp_path / "digest.json"
    wrong = {
        '{"position": 0, "hash": "' + "f" * 64 + '"}': "position 0 with hash",
        '{"position": -1, "hash": "' + "f" * 64 + '"}': "invalid position -1",
        '{"position": 2.5, "hash": "' + "f" * 64 + '"}': "invalid position 2.5",
        '{"position": "3", "hash": "' + "f" * 64 + '"}': "invalid position '3'",
        '{"position": true, "hash": "' + "f" * 64 + '"}': "invalid position True",
        '{"position": 1e400, "hash": "' + "f" * 64 + '"}': "invalid position inf",
        '{"position": 3, "hash": "garbage"}': "invalid hash 'garbage'",
        '{"position": 3}': "no hash",
        "[" * 5000 + "]" * 5000: "recursion limit",
        '{"a": ' * 5000 + "1" + "}" * 5000: "recursion limit",
        "[1, 2]": "not a digest",
    }
    for content, problem in wrong.items():
        digest.write_text(content)
        result = shell("--db", history.url, "audit", "verify", "--digest", str(digest))
        one_line_error(result, "not a digest", problem)
    digest.write_bytes(b"\xff\xfe garbage")
    one_line_error(shell("--db", history.url, "audit", "verify", "--digest", str(digest)))
    with Audit(history.url) as audit:
        with pytest.raises(ValidationError, match="position -1"):
            audit.verify(Digest(position=-1, hash="f" * 64, time=""))
        genesis = Digest(position=0, hash=chain.GENESIS, time="")
        assert audit.verify(genesis).ok  # every log extends the empty one


def test_report_options_are_checked(history: Ledger, tmp_path: Path) -> None:
    base = ("--db", history.url, "audit", "report")
    one_line_error(shell(*base, "dormant", "--days", str(10**20)), "invalid days")
    assert shell(*base, "dormant", "--days", "-5").exit_code == 2  # click's range: a usage error
    assert shell(*base, "dormant", "--days", "1e20").exit_code == 2
    one_line_error(
        shell(*base, "dormant", "--out", str(tmp_path / "no-such-folder" / "x.csv")),
        "cannot write --out",
    )
    with Audit(history.url) as audit, pytest.raises(ValidationError, match="invalid days"):
        audit.report("dormant", days=10**20)


def tamper_with_a_reason(history: Ledger) -> int:
    """Rewrite a recorded reason by hand and let the live read models pick it up."""
    table, column = events_table(history)
    position = next(
        p for p in range(1, 40) if b"JIRA-1" in state_at(history, p)
    )  # the first grant with a reason
    forged = state_at(history, position).replace(b"JIRA-1", b"JIRA-9")
    raw(history, f"UPDATE {table} SET state = ? WHERE {column} = ?", forged, position)
    live = ReadModel(history.url)
    try:
        live.rebuild()
    finally:
        live.close()
    return position


def test_reports_state_the_verified_head(history: Ledger) -> None:
    with Audit(history.url) as audit:
        head = audit.digest()
        frame = audit.report("role-changes", since=T0)
        assert frame.attrs["verified"]["position"] == head.position
        data = json.loads(audit.render(["role-changes"], "json", since=T0))
        page = audit.render(["role-changes"], "html", since=T0)
    assert data["verified"] == {"position": head.position, "hash": head.hash, "events": 28}
    assert f"head position {head.position}, hash {head.hash}" in page
    assert "NOT VERIFIED" not in page


def test_reports_refuse_a_broken_chain(history: Ledger) -> None:
    position = tamper_with_a_reason(history)
    base = (
        "--db",
        history.url,
        "audit",
        "report",
        "role-changes",
        "--since",
        "2026-01-01T00:00:00Z",
    )
    for fmt in ("csv", "json", "html"):
        refused = shell(*base, "--format", fmt)
        one_line_error(refused, "does not verify", f"BROKEN at position {position}")
        assert "JIRA-9" not in refused.stdout
    csv = shell(*base, "--unverified")
    assert csv.exit_code == 0
    assert csv.stdout.startswith(f"# NOT VERIFIED: BROKEN at position {position}")
    assert "JIRA-9" in csv.stdout
    data = json.loads(shell(*base, "--unverified", "--format", "json").stdout)
    assert data["verified"] is None and data["warning"].startswith("NOT VERIFIED")
    page = shell(*base, "--unverified", "--format", "html").stdout
    assert f'class="not-verified">NOT VERIFIED: BROKEN at position {position}' in page
    with Audit(history.url) as audit:
        with pytest.raises(NotVerified, match=f"BROKEN at position {position}"):
            audit.report("role-changes", since=T0)
        with pytest.raises(NotVerified):
            audit.render(["role-changes"], "json", since=T0)
        frame = audit.report("role-changes", since=T0, unverified=True)
        assert frame.attrs["verified"] is None and "NOT VERIFIED" in frame.attrs["warning"]


def test_reports_refuse_a_log_shorter_than_the_read_models(history: Ledger) -> None:
    live = ReadModel(history.url)
    live.catch_up()
    live.close()
    last = int(history.recorder.max_notification_id())
    table, column = events_table(history)
    raw(history, f"DELETE FROM {table} WHERE {column} > ?", last - 3)
    raw(history, "DELETE FROM ledger_chain WHERE position > ?", last - 3)
    assert verify(history) == (True, None)  # a consistent, shorter chain
    refused = shell("--db", history.url, "audit", "report", "role-changes")
    one_line_error(refused, f"read models show events up to position {last}")


def test_a_replay_file_is_marked_and_takes_no_writes(history: Ledger, tmp_path: Path) -> None:
    out = tmp_path / "march.db"
    assert replay_into(history, out).exit_code == 0
    replay_url = f"sqlite:///{out}"
    for command in (
        ("role", "define", "auditor"),
        ("audit", "verify"),
        ("audit", "digest"),
        ("audit", "report", "access-review"),
        ("rebuild",),
    ):
        one_line_error(shell("--db", replay_url, *command), "point-in-time replay", "query it")
    with pytest.raises(ValidationError, match="point-in-time replay"):
        Ledger(replay_url)
    with Audit(history.url) as audit:
        head = audit.digest()
    mark = replay_file.read(replay_url)
    assert mark is not None
    assert (mark.until, mark.position, mark.hash) == (
        "2026-01-02T13:00:00+00:00",
        head.position,
        head.hash,
    )
    then = ReadModel(replay_url)
    try:
        assert then.catch_up() == 0
        with pytest.raises(ValidationError, match="no log to rebuild"):
            then.rebuild()
        assert [u.email for u in then.users_with_role("admin")] == ["u0@acme.org", "u1@acme.org"]
        assert len(then.audit_log()) == mark.events
    finally:
        then.close()
    holders = shell("--db", replay_url, "--json", "query", "holders", "admin")
    assert holders.exit_code == 0, holders.output
    assert sorted(u["email"] for u in json.loads(holders.stdout)) == ["u0@acme.org", "u1@acme.org"]
    assert replay_file.read(replay_url) == mark
    sqlite = sqlite3.connect(out)
    try:
        tables = {row[0] for row in sqlite.execute("SELECT name FROM sqlite_master")}
    finally:
        sqlite.close()
    assert "stored_events" not in tables and "ledger_chain" not in tables


def test_check_shows_differences_as_values(history: Ledger) -> None:
    live = ReadModel(history.url)
    live.catch_up()
    user_id = history.resolve_user("u0@acme.org")
    with live.engine.begin() as conn:
        conn.execute(
            text("UPDATE users SET login_count = login_count + 5 WHERE id = :id"),
            {"id": user_id.hex if history.url.startswith("sqlite") else user_id},
        )
    live.close()
    found = shell("--db", history.url, "audit", "check")
    assert found.exit_code == 1
    assert "users: 1 rows only in the live read models, 1 only in the replay" in found.stdout
    assert "login_count=6" in found.stdout and "login_count=1" in found.stdout
    assert f"id={user_id}" in found.stdout and "email=(sealed)" in found.stdout
    assert "UUID(" not in found.stdout and "datetime.datetime(" not in found.stdout


@pytest.mark.parametrize(
    ("days", "said"),
    [(0, "must be at least 1"), (40_000, "must be at most 36525"), (2.5, "a whole number")],
)
def test_report_days_are_checked_in_our_words(history: Ledger, days: Any, said: str) -> None:
    with Audit(history.url) as audit, pytest.raises(ValidationError) as raised:
        audit.report("dormant", days=days)
    assert said in str(raised.value) and "Input should" not in str(raised.value)
