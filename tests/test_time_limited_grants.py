"""Time-limited grants: a grant given `until` ends there by itself, for every question now or at
any T, whether or not `expire_grants` has recorded its expiry; `expire_grants` records each
expiry once, even from four processes at once; `extend_grant` moves the end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from ledger import Conflict, Ledger, NotFound, ValidationError
from ledger.audit import Audit
from projections import ReadModel
from tests import workers
from tests.conftest import ADMIN
from tests.helpers import Clock, cli, event_names, one_line, stored_state
from tests.test_concurrency import run_workers

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
UNTIL = datetime(2026, 3, 15, 17, 30, tzinfo=UTC)
TICK = timedelta(microseconds=1)


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
def timed(url: str, acme: UUID, clock: Clock) -> Iterator[Ledger]:
    """The ledger of `led`, on a clock of the test's own (starting at START)."""
    ledger = Ledger(url, clock=clock)
    try:
        yield ledger
    finally:
        ledger.close()


def _expiries(led: Ledger) -> list[str]:
    return [name for name in event_names(led) if name.endswith("Expired")]


def test_a_grant_ends_at_until_for_every_question_before_any_expiry_is_recorded(
    timed: Ledger, rm: ReadModel, acme: UUID, clock: Clock
) -> None:
    ann = timed.create_user("ann@acme.org", account_id=acme, actor=ADMIN)
    assert timed.grant_role(ann, "consultant", actor=ADMIN, until=UNTIL, reason="JIRA-7")
    assert timed.grant_account_role(acme, "Consultancy", actor=ADMIN, until=UNTIL)
    rm.catch_up()
    before, at_end = UNTIL - TICK, UNTIL
    assert rm.has_role(ann, "consultant", at=before)
    assert not rm.has_role(ann, "consultant", at=at_end)
    assert rm.roles(ann, at=before) == {"consultant"}
    assert rm.roles(ann, at=at_end, effective=False) == set()
    assert [u.id for u in rm.users_with_role("consultant", at=before)] == [ann]
    assert rm.users_with_role("consultant", at=at_end) == []
    assert rm.account_has_role(acme, "Consultancy", at=before)
    assert not rm.account_has_role(acme, "Consultancy", at=at_end)
    # now (2026-11-30 or later) is past UNTIL: ended, with no expiry recorded
    assert _expiries(timed) == []
    assert not rm.has_role(ann, "consultant")
    assert rm.roles(ann, effective=False) == set()
    assert rm.users_with_role("consultant") == []
    assert not rm.account_has_role(acme, "Consultancy")
    user = rm.get_user(ann)
    account = rm.get_account(acme)
    assert user is not None and user.roles == []
    assert account is not None and account.account_roles == []


def test_a_grant_ending_in_the_real_future_is_held_now_until_then(
    led: Ledger, rm: ReadModel, acme: UUID
) -> None:
    ann = led.create_user("ann@acme.org", account_id=acme, actor=ADMIN)
    bob = led.create_user("bob@acme.org", account_id=acme, actor=ADMIN)
    end = datetime.now(UTC) + timedelta(seconds=1.5)
    led.grant_role(ann, "consultant", actor=ADMIN, until=end)
    led.grant_role(bob, "consultant", actor=ADMIN)  # without until: as before
    rm.catch_up()
    assert rm.has_role(ann, "consultant") and rm.has_role(bob, "consultant")
    time.sleep(max(0.0, (end - datetime.now(UTC)).total_seconds()) + 0.05)
    assert not rm.has_role(ann, "consultant")
    assert rm.roles(ann) == set()
    assert [u.email for u in rm.users_with_role("consultant")] == ["bob@acme.org"]
    assert rm.has_role(bob, "consultant")


def test_expire_records_each_ended_grant_once_at_its_end(
    timed: Ledger, rm: ReadModel, acme: UUID, clock: Clock
) -> None:
    ann = timed.create_user("ann@acme.org", account_id=acme, actor=ADMIN)
    bob = timed.create_user("bob@acme.org", account_id=acme, actor=ADMIN)
    timed.grant_role(ann, "consultant", actor=ADMIN, until=UNTIL)
    timed.grant_role(ann, "admin-reader", actor=ADMIN, until=UNTIL + timedelta(days=30))
    timed.grant_role(bob, "consultant", actor=ADMIN)
    timed.grant_account_role(acme, "Consultancy", actor=ADMIN, until=UNTIL)
    clock.moment = UNTIL - TICK
    assert timed.expire_grants(actor=ADMIN) == 0
    clock.moment = UNTIL + timedelta(hours=3)
    assert timed.expire_grants(actor="cron:expiry") == 2
    assert timed.expire_grants(actor="cron:expiry") == 0
    assert sorted(_expiries(timed)) == ["AccountRoleExpired", "RoleExpired"]
    rm.catch_up()
    log = rm.audit_log()
    expired = log[log.event.str.endswith("Expired")]
    assert list(expired["at"]) == [UNTIL.isoformat()] * 2  # when access ended ...
    assert set(expired.timestamp) == {UNTIL + timedelta(hours=3)}  # ... recorded later
    assert set(expired.actor) == {"cron:expiry"}
    assert rm.has_role(ann, "consultant", at=UNTIL - TICK)
    assert not rm.has_role(ann, "consultant", at=UNTIL)
    assert rm.has_role(ann, "admin-reader", at=UNTIL + timedelta(days=1))
    assert rm.has_role(bob, "consultant")
    clock.moment = UNTIL + timedelta(days=31)
    assert timed.expire_grants(actor=ADMIN) == 1
    assert timed.expire_grants(actor=ADMIN) == 0


def test_extend_grant_moves_the_end_either_way(
    timed: Ledger, rm: ReadModel, acme: UUID, clock: Clock
) -> None:
    ann = timed.create_user("ann@acme.org", account_id=acme, actor=ADMIN)
    timed.grant_role(ann, "consultant", actor=ADMIN, until=UNTIL)
    later = UNTIL + timedelta(days=10)
    assert timed.extend_grant("ann@acme.org", "consultant", later, actor=ADMIN, reason="CHG-1")
    assert not timed.extend_grant(ann, "consultant", later, actor=ADMIN)  # ends then already
    timed.grant_account_role(acme, "Consultancy", actor=ADMIN)  # open-ended: given an end
    assert timed.extend_grant("Acme", "Consultancy", UNTIL, actor=ADMIN)
    rm.catch_up()
    assert rm.has_role(ann, "consultant", at=later - TICK)
    assert not rm.has_role(ann, "consultant", at=later)
    assert not rm.account_has_role(acme, "Consultancy", at=UNTIL)
    clock.moment = UNTIL + timedelta(days=1)
    assert timed.extend_grant(ann, "consultant", UNTIL + timedelta(days=2), actor=ADMIN)
    clock.moment = UNTIL + timedelta(days=3)
    with pytest.raises(NotFound, match="holds no grant of 'consultant'"):
        timed.extend_grant(ann, "consultant", UNTIL + timedelta(days=9), actor=ADMIN)
    assert timed.expire_grants(actor=ADMIN) == 2
    rm.catch_up()
    assert rm.has_role(ann, "consultant", at=UNTIL + timedelta(days=2) - TICK)
    assert not rm.has_role(ann, "consultant", at=UNTIL + timedelta(days=2))
    changes = Audit(timed.url).report("role-changes", since=START, until=UNTIL + timedelta(days=9))
    assert list(changes.change) == [
        "granted", "end moved", "granted", "end moved", "end moved", "expired", "expired",
    ]  # fmt: skip
    assert changes.ends_at.iloc[0] == UNTIL and changes.ends_at.iloc[1] == later


def test_granting_a_held_role_with_another_end_is_a_conflict_pointing_to_extend_grant(
    timed: Ledger, acme: UUID
) -> None:
    ann = timed.create_user("ann@acme.org", account_id=acme, actor=ADMIN)
    timed.grant_role(ann, "consultant", actor=ADMIN)
    timed.grant_account_role(acme, "Consultancy", actor=ADMIN, until=UNTIL)
    before = event_names(timed)
    with pytest.raises(Conflict, match="'consultant' already, without an end: use extend_grant"):
        timed.grant_role(ann, "consultant", actor=ADMIN, until=UNTIL)
    with pytest.raises(Conflict, match=r"'Consultancy' already, until .*: use extend_grant"):
        timed.grant_account_role(acme, "Consultancy", actor=ADMIN, until=UNTIL + TICK)
    assert not timed.grant_account_role(acme, "Consultancy", actor=ADMIN, until=UNTIL)
    assert not timed.grant_role(ann, "consultant", actor=ADMIN)  # held: nothing to change
    assert event_names(timed) == before


def test_a_grant_past_its_end_is_expired_before_it_is_granted_again(
    timed: Ledger, rm: ReadModel, acme: UUID, clock: Clock
) -> None:
    ann = timed.create_user("ann@acme.org", account_id=acme, actor=ADMIN)
    timed.grant_role(ann, "consultant", actor=ADMIN, until=UNTIL)
    clock.moment = UNTIL + timedelta(days=1)
    assert not timed.revoke_role(ann, "consultant", actor=ADMIN)  # ended: nothing to revoke
    assert timed.grant_role(ann, "consultant", actor=ADMIN)
    assert event_names(timed)[-2:] == ["RoleExpired", "RoleGranted"]
    assert timed.expire_grants(actor=ADMIN) == 0
    rm.catch_up()
    assert not rm.has_role(ann, "consultant", at=UNTIL + timedelta(hours=1))
    assert rm.has_role(ann, "consultant")


def test_a_revocation_before_the_end_ends_the_grant_there(
    timed: Ledger, rm: ReadModel, acme: UUID, clock: Clock
) -> None:
    ann = timed.create_user("ann@acme.org", account_id=acme, actor=ADMIN)
    timed.grant_role(ann, "consultant", actor=ADMIN, until=UNTIL)
    clock.moment = START + timedelta(days=1)
    assert timed.revoke_role(ann, "consultant", actor=ADMIN)
    clock.moment = UNTIL + timedelta(days=1)
    assert timed.expire_grants(actor=ADMIN) == 0
    rm.catch_up()
    assert not rm.has_role(ann, "consultant", at=START + timedelta(days=2))


def test_closing_an_account_expires_ended_grants_and_revokes_the_rest(
    timed: Ledger, rm: ReadModel, acme: UUID, clock: Clock
) -> None:
    timed.grant_account_role(acme, "Consultancy", actor=ADMIN, until=UNTIL)
    clock.moment = UNTIL + timedelta(days=1)
    timed.close_account(acme, actor=ADMIN)
    assert "AccountRoleRevoked" not in event_names(timed)
    assert _expiries(timed) == ["AccountRoleExpired"]
    assert timed.expire_grants(actor=ADMIN) == 0


@pytest.mark.parametrize(
    ("until", "message"),
    [
        (START, "invalid until 2026-03-01T09:00:00+00:00: it is not after the time"),
        (START - timedelta(days=1), "invalid until 2026-02-28T09:00:00+00:00"),
        (datetime(1, 1, 1, tzinfo=UTC), "invalid until 0001-01-01T00:00:00+00:00"),
        (datetime(2030, 1, 1), "invalid until a naive datetime"),
        ("2030-01-01T00:00:00", "invalid until"),
        ("9999-12-31T23:59:59-01:00", "invalid until"),
        ("next tuesday", "invalid until 'next tuesday'"),
        ("2030-01-01\x00", "invalid until"),
        (10**30, "invalid until"),
    ],
)
def test_a_bad_until_is_rejected_naming_it_and_records_nothing(
    timed: Ledger, acme: UUID, until: Any, message: str
) -> None:
    ann = timed.create_user("ann@acme.org", account_id=acme, actor=ADMIN)
    timed.grant_role(ann, "admin", actor=ADMIN, until=UNTIL)
    before = stored_state(timed)
    for attempt in (
        lambda: timed.grant_role(ann, "consultant", actor=ADMIN, until=until),
        lambda: timed.grant_account_role(acme, "Consultancy", actor=ADMIN, until=until),
        lambda: timed.extend_grant(ann, "admin", until, actor=ADMIN),
    ):
        with pytest.raises(ValidationError) as rejected:
            attempt()
        assert message in str(rejected.value)
        assert "\n" not in str(rejected.value)
    assert stored_state(timed) == before


def test_extend_grant_refuses_what_it_cannot_name(timed: Ledger, acme: UUID) -> None:
    ann = timed.create_user("ann@acme.org", account_id=acme, actor=ADMIN)
    before = stored_state(timed)
    with pytest.raises(NotFound, match="holds no grant of 'consultant'"):
        timed.extend_grant(ann, "consultant", UNTIL, actor=ADMIN)
    with pytest.raises(NotFound, match=r"nobody@acme\.org"):
        timed.extend_grant("nobody@acme.org", "consultant", UNTIL, actor=ADMIN)
    with pytest.raises(NotFound, match="'No Such Account'"):
        timed.extend_grant("No Such Account", "consultant", UNTIL, actor=ADMIN)
    with pytest.raises(NotFound, match=str(UUID(int=7))):
        timed.extend_grant(UUID(int=7), "consultant", UNTIL, actor=ADMIN)
    assert stored_state(timed) == before


def test_a_command_id_covers_until(timed: Ledger, acme: UUID) -> None:
    ann = timed.create_user("ann@acme.org", account_id=acme, actor=ADMIN)
    assert timed.grant_role(ann, "consultant", actor=ADMIN, until=UNTIL, command_id="g-1")
    assert timed.grant_role(ann, "consultant", actor=ADMIN, until=UNTIL, command_id="g-1")
    with pytest.raises(Conflict, match="g-1"):
        timed.grant_role(ann, "consultant", actor=ADMIN, until=UNTIL + TICK, command_id="g-1")


def test_expire_in_four_processes_records_each_expiry_once(
    led: Ledger, rm: ReadModel, acme: UUID
) -> None:
    end = datetime.now(UTC) + timedelta(seconds=2)
    people = [led.create_user(f"user{i}@acme.org", account_id=acme, actor=ADMIN) for i in range(12)]
    for person in people:
        led.grant_role(person, "consultant", actor=ADMIN, until=end)
        led.grant_role(person, "admin-reader", actor=ADMIN, until=end)
    led.grant_account_role(acme, "Consultancy", actor=ADMIN, until=end)
    time.sleep(max(0.0, (end - datetime.now(UTC)).total_seconds()) + 0.05)
    outcomes = run_workers(workers.expire_grants, *[(led.url,)] * 4)
    assert all(outcome.startswith("ok ") for outcome in outcomes), outcomes
    assert sum(int(outcome.split()[1]) for outcome in outcomes) == 25
    assert len(_expiries(led)) == 25
    assert led.expire_grants(actor=ADMIN) == 0
    rm.catch_up()
    assert rm.users_with_role("consultant") == []
    with Audit(led.url) as audit:
        assert audit.verify().ok
        _, differences = audit.check()
    assert differences == []


def test_replay_and_check_agree_with_the_live_read_models(
    timed: Ledger, rm: ReadModel, acme: UUID, clock: Clock, tmp_path: Path
) -> None:
    ann = timed.create_user("ann@acme.org", account_id=acme, actor=ADMIN)
    timed.grant_role(ann, "consultant", actor=ADMIN, until=UNTIL)
    clock.moment = START + timedelta(days=1)
    timed.extend_grant(ann, "consultant", UNTIL + timedelta(days=1), actor=ADMIN)
    clock.moment = UNTIL + timedelta(days=5)
    timed.expire_grants(actor=ADMIN)
    rm.catch_up()
    with Audit(timed.url) as audit:
        assert audit.check()[1] == []
        audit.replay(START + timedelta(days=2), tmp_path / "then.db")
    then = ReadModel(f"sqlite:///{tmp_path / 'then.db'}")
    try:  # as it stood on day 2: the end known then, the expiry not yet recorded
        assert then.has_role(ann, "consultant", at=UNTIL)
        assert not then.has_role(ann, "consultant", at=UNTIL + timedelta(days=1))
    finally:
        then.close()
    review = Audit(timed.url).report("access-review", at=UNTIL + timedelta(hours=1))
    assert list(review.roles) == ["consultant"]
    review = Audit(timed.url).report("access-review", at=UNTIL + timedelta(days=1))
    assert list(review.roles) == [""]


def test_the_cli_and_apply_take_until(url: str, tmp_path: Path) -> None:
    db = ["--db", url, "--actor", "cli:alice"]
    cli(*db, "role", "define", "consultant")
    cli(*db, "account-role", "define", "Consultancy")
    cli(*db, "account", "create", "Client BV")
    cli(*db, "user", "create", "ann@client.example", "--account", "Client BV")
    cli(*db, "user", "create", "bob@client.example", "--account", "Client BV")
    done = cli(*db, "--json", "user", "grant-role", "ann@client.example", "consultant",
               "--until", "2099-01-01")  # fmt: skip
    assert json.loads(done.stdout) == {"result": True, "recorded": True}
    cli(*db, "account", "grant-role", "Client BV", "Consultancy", "--until", "2099-01-01T12:00",
        "--tz", "Europe/Amsterdam")  # fmt: skip
    refused = cli(*db, "user", "grant-role", "bob@client.example", "consultant",
                  "--until", "2001-01-01", code=1)  # fmt: skip
    assert one_line(refused).startswith("error: invalid until 2001-01-01T00:00:00+00:00")
    moved = cli(*db, "extend-grant", "ann@client.example", "consultant", "2099-06-01")
    assert "now ends at 2099-06-01T00:00:00+00:00: recorded" in moved.stdout
    cli(*db, "extend-grant", "Client BV", "Consultancy", "2099-02-01")
    cli(*db, "extend-grant", "bob@client.example", "consultant", "2099-02-01", code=1)
    batch = tmp_path / "grants.jsonl"
    batch.write_text(
        '{"command": "grant_role", "user": "bob@client.example", "role": "consultant",'
        ' "until": "2099-03-01T00:00:00Z", "command_id": "b-1"}\n'
        '{"command": "extend_grant", "user_or_account": "bob@client.example",'
        ' "role": "consultant", "until": "2099-04-01T00:00:00Z"}\n'
        '{"command": "grant_role", "user": "ann@client.example", "role": "consultant",'
        ' "until": "2000-01-01T00:00:00Z"}\n'
        '{"command": "expire_grants"}\n'
    )
    applied = cli(*db, "--json", "apply", str(batch), code=1)
    summary = json.loads(applied.stdout)
    assert summary["applied"] == 2 and summary["unchanged"] == 1
    assert [r["line"] for r in summary["rejected"]] == [3]
    expired = cli(*db, "--json", "expire")
    assert json.loads(expired.stdout) == {"result": 0, "recorded": False}
    holds = cli(*db, "--json", "query", "has-role", "bob@client.example", "consultant",
                "--at", "2099-03-31T23:59:59Z")  # fmt: skip
    assert json.loads(holds.stdout)["has_role"] is True
    holds = cli(*db, "--json", "query", "has-role", "bob@client.example", "consultant",
                "--at", "2099-04-01")  # fmt: skip
    assert json.loads(holds.stdout)["has_role"] is False


def test_project_follow_records_expiries_as_it_polls(url: str, tmp_path: Path) -> None:
    led = Ledger(url)
    try:
        led.define_role("consultant", actor=ADMIN)
        account = led.create_account("Acme", actor=ADMIN)
        ann = led.create_user("ann@acme.org", account_id=account, actor=ADMIN)
        end = datetime.now(UTC) + timedelta(seconds=1)
        led.grant_role(ann, "consultant", actor=ADMIN, until=end)
        follower = subprocess.Popen(
            [str(Path(sys.executable).parent / "ledger"), "--db", url, "project", "--follow"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "LEDGER_ACTOR": "cli:follower"},
        )
        try:
            deadline = time.monotonic() + 60
            while "RoleExpired" not in event_names(led) and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            follower.send_signal(signal.SIGTERM)
            follower.wait(timeout=30)
        assert event_names(led).count("RoleExpired") == 1
        rm = ReadModel(url)
        try:
            rm.catch_up()
            row = rm.audit_log(ann).iloc[-1]
            assert (row.event, row.actor) == ("RoleExpired", "cli:follower")
        finally:
            rm.close()
    finally:
        led.close()


def test_project_follow_on_a_read_only_ledger_says_once_that_it_records_no_expiry(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.db"
    led = Ledger(f"sqlite:///{path}")
    led.define_role("consultant", actor=ADMIN)
    led.close()
    cli("--db", f"sqlite:///{path}", "project")
    follower = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "ledger"),
            "--db",
            f"sqlite:///{path}?mode=ro",
            "project",
            "--follow",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert follower.stdout is not None
    assert "following" in follower.stdout.readline()
    time.sleep(2)  # about ten polls
    follower.send_signal(signal.SIGTERM)
    _, stderr = follower.communicate(timeout=30)
    assert stderr.count("warning:") == 1, stderr
    assert "read-only" in stderr and "not recorded as expired" in stderr
