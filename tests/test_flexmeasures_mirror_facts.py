"""A mirror records FlexMeasures' facts and no others: a grant that breaks a separation-of-duties
rule is recorded and reported, a living user the ledger refuses is reported and never recorded
as deleted, an actor names a FlexMeasures user by id (never by name), and a bad source URL
never shows its password."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from click.testing import CliRunner

from ledger import Conflict, Ledger
from ledger.cli import main
from ledger.flexmeasures.mirror import Mirror, actor_of
from ledger.flexmeasures.source import AuditRow
from projections import ReadModel
from tests.flexmeasures_harness.driver import FlexMeasures
from tests.flexmeasures_harness.fixtures import audit_rows, running_flexmeasures

REPOSITORY = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def flexmeasures(request: pytest.FixtureRequest) -> Iterator[FlexMeasures]:
    with running_flexmeasures(request) as started:
        started.do("populate")
        yield started


def _import(url: str, flexmeasures: FlexMeasures) -> Any:
    result = CliRunner().invoke(
        main, ["--db", url, "--json", "flexmeasures", "import", "--from", flexmeasures.url]
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _email(name: str) -> str:
    return f"{name}-{uuid4().hex[:8]}@client.example"


def test_a_mirrored_grant_breaking_a_separation_rule_is_recorded_and_reported(
    url: str, flexmeasures: FlexMeasures
) -> None:
    with Ledger(url) as led:
        for role in ("consultant", "admin-reader"):
            led.define_role(role, actor="cli:test")
        led.define_sod_rule("r", ["consultant", "admin-reader"], actor="cli:test")
    email = _email("both")
    flexmeasures.do(
        "create_user", email=email, account="Client BV", roles=["consultant", "admin-reader"]
    )
    summary = _import(url, flexmeasures)
    assert not [p for p in summary["problems"] if "separation-of-duties" in p]
    model = ReadModel(url)
    model.catch_up()
    try:
        user = next(u for u in model.list_users(include_inactive=True) if u.email == email)
        assert model.has_role(user.id, "consultant") and model.has_role(user.id, "admin-reader")
    finally:
        model.close()
    report = CliRunner().invoke(main, ["--db", url, "audit", "report", "sod-violations"])
    assert report.exit_code == 0, report.output
    assert email in report.output
    # the ledger's own commands still enforce the rule
    with Ledger(url) as led, pytest.raises(Conflict, match="separation-of-duties"):
        led.grant_role("carla@seita.example", "admin-reader", actor="cli:test")


def test_a_living_user_the_ledger_refuses_is_reported_not_recorded_as_deleted(
    url: str, flexmeasures: FlexMeasures
) -> None:
    email = _email("taken")
    with Ledger(url) as led:
        elsewhere = led.create_account("Elsewhere", actor="cli:test")
        led.create_user(email, account_id=elsewhere, actor="cli:test")
    fm_id = flexmeasures.do("create_user", email=email, account="Client BV", roles=[])
    created = next(r for r in audit_rows(flexmeasures) if r["affected_user_id"] == fm_id)
    summary = _import(url, flexmeasures)
    assert (
        f"FlexMeasures user {fm_id} not mirrored: email {email!r} is already taken"
        in (summary["problems"])
    )
    mirror = Mirror(url, flexmeasures.url)
    try:
        assert ("user", fm_id) not in mirror.mirrored_ids()
    finally:
        mirror.close()
    model = ReadModel(url)
    model.catch_up()
    try:
        users = model.list_users(include_inactive=True)
        assert not [u for u in users if u.email.startswith(f"deleted-user-{created['id']}@")]
        assert not [u for u in users if u.erased and u.email == email]
        log = model.audit_log()
        assert "UserErased" not in set(log[log["actor"] == "flexmeasures:import"]["event"])
    finally:
        model.close()
    status = CliRunner().invoke(
        main, ["--db", url, "flexmeasures", "status", "--from", flexmeasures.url]
    )
    assert status.exit_code == 0, status.output
    assert f"FlexMeasures users not mirrored: {fm_id}" in status.output.splitlines()


def _row(user_id: int | None, name: str | None) -> AuditRow:
    return AuditRow(1, datetime(2026, 1, 1, tzinfo=UTC), "User x created", user_id, name, 2, 3)


@pytest.mark.parametrize(
    ("user_id", "name", "actor"),
    [
        (42, "Ann Example", "flexmeasures:42"),
        (42, None, "flexmeasures:42"),
        (None, "flexmeasures CLI", "flexmeasures:flexmeasures CLI"),
        (None, "bad\x00name", "flexmeasures:bad?name"),
        (None, None, "flexmeasures:system"),
        (None, "  ", "flexmeasures:system"),
    ],
)
def test_an_actor_names_a_flexmeasures_user_by_id_never_by_name(
    user_id: int | None, name: str | None, actor: str
) -> None:
    assert actor_of(_row(user_id, name)) == actor


@pytest.mark.parametrize("url", ["sqlite"], indirect=True)
def test_a_source_url_sqlalchemy_cannot_read_is_refused_without_its_password(url: str) -> None:
    result = subprocess.run(
        [str(Path(sys.executable).with_name("ledger")), "--db", url, "flexmeasures", "import",
         "--from", "postgresql://fm:s3cret-pw@db.example:abc/fm"],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "invalid FlexMeasures database URL 'postgresql://fm:***@db.example:abc/fm'" in lines[0]
    assert "s3cret" not in result.stderr + result.stdout
    with Ledger(url) as led:
        assert led.recorder.max_notification_id() in (None, 0)


def test_the_harness_leaves_no_flexmeasures_files_in_the_repository(
    flexmeasures: FlexMeasures,
) -> None:
    for name in ("flexmeasures.log", "generic_asset_fm_user_ownership.sql"):
        assert not (REPOSITORY / name).exists()
