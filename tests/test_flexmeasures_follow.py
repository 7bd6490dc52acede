"""`ledger flexmeasures follow` against a real FlexMeasures 1.0.1: it picks up changes made
through FlexMeasures' API with their actor and time, and a follower killed with SIGKILL at any
instant and restarted neither loses nor duplicates a change."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from click.testing import CliRunner

from ledger.cli import main
from ledger.flexmeasures.mirror import Mirror
from projections import ReadModel
from tests.flexmeasures_harness.driver import FlexMeasures
from tests.flexmeasures_harness.fixtures import audit_rows, running_flexmeasures

ROOT = "root@seita.example"


@pytest.fixture(scope="module")
def flexmeasures(request: pytest.FixtureRequest) -> Iterator[FlexMeasures]:
    with running_flexmeasures(request) as started:
        started.do("populate")
        yield started


def _run(url: str, *args: str) -> str:
    result = CliRunner().invoke(main, ["--db", url, *args])
    assert result.exit_code == 0, result.output
    return result.output


def _patch_user(flexmeasures: FlexMeasures, email: str, body: dict[str, object]) -> None:
    user_id = flexmeasures.do("user_id", email=email)
    flexmeasures.do("api", method="PATCH", path=f"/api/v3_0/users/{user_id}", as_email=ROOT,
                    body=body)  # fmt: skip


def _mirrored_equal(url: str, flexmeasures: FlexMeasures) -> None:
    mirror = Mirror(url, flexmeasures.url)
    ids = mirror.mirrored_ids()
    mirror.close()
    model = ReadModel(url)
    try:
        model.catch_up()
        for fm_id, active in flexmeasures.query("SELECT id, active FROM fm_user"):
            user = ids[("user", fm_id)]
            assert model.is_active(user) == active
            held = flexmeasures.query(
                "SELECT r.name FROM roles_users ru JOIN role r ON r.id = ru.role_id"
                " WHERE ru.user_id = %(id)s",
                id=fm_id,
            )
            assert model.roles(user, effective=False) == {name for (name,) in held}
    finally:
        model.close()


def _audit_log(url: str) -> Any:
    model = ReadModel(url)
    try:
        model.catch_up()
        return model.audit_log()
    finally:
        model.close()


def test_follow_picks_up_a_change_made_through_the_api_with_its_actor_and_time(
    url: str, flexmeasures: FlexMeasures
) -> None:
    email = f"dave-{uuid4().hex[:8]}@client.example"
    flexmeasures.do("create_user", email=email, account="Client BV", roles=["consultant"])
    _run(url, "flexmeasures", "import", "--from", flexmeasures.url)
    roles = flexmeasures.do("role_ids", names=["consultant", "admin-reader"])
    _patch_user(flexmeasures, email, {"flexmeasures_roles": roles})
    row = audit_rows(flexmeasures)[-1]
    assert row["event"] == "Added role(s): [admin-reader]."
    _run(url, "flexmeasures", "follow", "--from", flexmeasures.url, "--interval", "0.1",
         "--polls", "2")  # fmt: skip
    _mirrored_equal(url, flexmeasures)
    log = _audit_log(url)
    mirrored = log[log["reason"] == f"FlexMeasures audit_log row {row['id']}"]
    assert list(mirrored["event"]) == ["RoleGranted"]
    assert list(mirrored["actor"]) == [f"flexmeasures:{row['active_user_id']}"]
    assert list(mirrored["timestamp"]) == [row["at"].replace(tzinfo=UTC)]
    output = _run(url, "flexmeasures", "import", "--from", flexmeasures.url)
    assert "0 change(s) recorded" in output


def _start_follower(url: str, source: str) -> subprocess.Popen[bytes]:
    ledger = str(Path(sys.executable).with_name("ledger"))
    return subprocess.Popen(
        [ledger, "--db", url, "flexmeasures", "follow", "--from", source, "--interval", "0.05"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


@pytest.mark.slow
def test_a_follower_killed_at_any_instant_neither_loses_nor_duplicates(
    url: str, flexmeasures: FlexMeasures
) -> None:
    granted_to = f"erin-{uuid4().hex[:8]}@client.example"
    toggled = f"fred-{uuid4().hex[:8]}@client.example"
    for email in (granted_to, toggled):
        flexmeasures.do("create_user", email=email, account="Client BV", roles=[])
    _run(url, "flexmeasures", "import", "--from", flexmeasures.url)
    first_new = audit_rows(flexmeasures)[-1]["id"] + 1
    randomness = random.Random(16)
    roles = flexmeasures.do("role_ids", names=["admin-reader"])
    follower = _start_follower(url, flexmeasures.url)
    try:
        for step in range(12):
            granted = step % 2 == 0
            _patch_user(flexmeasures, granted_to, {"flexmeasures_roles": roles if granted else []})
            _patch_user(flexmeasures, toggled, {"active": not granted})
            time.sleep(randomness.uniform(0.0, 0.6))
            os.killpg(follower.pid, signal.SIGKILL)
            follower.wait()
            follower = _start_follower(url, flexmeasures.url)
        time.sleep(1)
    finally:
        os.killpg(follower.pid, signal.SIGKILL)
        follower.wait()
    _run(url, "flexmeasures", "follow", "--from", flexmeasures.url, "--polls", "1")
    _mirrored_equal(url, flexmeasures)
    rows = [row for row in audit_rows(flexmeasures) if row["id"] >= first_new]
    assert len(rows) == 24
    log = _audit_log(url)
    by_row = Counter(
        reason for reason in log["reason"] if str(reason).startswith("FlexMeasures audit_log")
    )
    for row in rows:
        assert by_row[f"FlexMeasures audit_log row {row['id']}"] == 1, row
    observed = log[log["actor"] == "flexmeasures:import"]
    assert observed["timestamp"].max() < rows[0]["at"].replace(tzinfo=UTC)
    _run(url, "audit", "verify")


@pytest.mark.slow
@pytest.mark.parametrize("url", ["sqlite"], indirect=True)
def test_two_followers_at_once_record_each_change_once(
    url: str, flexmeasures: FlexMeasures
) -> None:
    granted_to = f"gina-{uuid4().hex[:8]}@client.example"
    flexmeasures.do("create_user", email=granted_to, account="Client BV", roles=[])
    _run(url, "flexmeasures", "import", "--from", flexmeasures.url)
    first_new = audit_rows(flexmeasures)[-1]["id"] + 1
    roles = flexmeasures.do("role_ids", names=["admin-reader"])
    followers = [_start_follower(url, flexmeasures.url) for _ in range(2)]
    try:
        for step in range(6):
            _patch_user(
                flexmeasures, granted_to, {"flexmeasures_roles": roles if step % 2 == 0 else []}
            )
            time.sleep(0.3)
        time.sleep(2)
    finally:
        for follower in followers:
            os.killpg(follower.pid, signal.SIGKILL)
            follower.wait()
    _run(url, "flexmeasures", "follow", "--from", flexmeasures.url, "--polls", "1")
    _mirrored_equal(url, flexmeasures)
    log = _audit_log(url)
    by_row = Counter(str(reason) for reason in log["reason"])
    rows = [row for row in audit_rows(flexmeasures) if row["id"] >= first_new]
    assert len(rows) == 6
    for row in rows:
        assert by_row[f"FlexMeasures audit_log row {row['id']}"] == 1, row
