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
from ledger.audit import Audit
from ledger.cli import main
from ledger.domain import ERASED
from ledger.flexmeasures.mirror import Mirror, actor_of
from ledger.flexmeasures.source import AuditRow
from ledger.storage import side_tables as side
from projections import ReadModel
from tests.flexmeasures_harness.driver import FlexMeasures
from tests.flexmeasures_harness.fixtures import audit_rows, running_flexmeasures
from tests.test_erasure_on_disk import on_disk

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


def _ledger_user(model: ReadModel, email: str) -> Any:
    return next(u for u in model.list_users(include_inactive=True) if u.email == email)


def test_an_account_deleted_before_the_import_is_created_and_closed_at_its_rows_times(
    url: str, flexmeasures: FlexMeasures
) -> None:
    doomed = f"Doomed {uuid4().hex[:8]}"
    flexmeasures.do("cli", args=["add", "account", "--name", doomed])
    doomed_id = flexmeasures.do("account_id", name=doomed)
    flexmeasures.do("create_user", email=_email("doomed"), account=doomed, roles=[])
    flexmeasures.do("cli", args=["delete", "account", "--id", str(doomed_id), "--force"])
    rows = flexmeasures.query(
        "SELECT id, event_datetime FROM audit_log WHERE affected_account_id = %(a)s ORDER BY id",
        a=doomed_id,
    )
    created_at, last_at = (rows[0][1].replace(tzinfo=UTC), rows[-1][1].replace(tzinfo=UTC))
    _import(url, flexmeasures)
    model = ReadModel(url)
    model.catch_up()
    try:
        account = next(a for a in model.list_accounts(include_closed=True) if a.name == doomed)
        log = model.audit_log(account_id=account.id)
        own = log[log["aggregate_id"] == account.id]
        events = list(own["event"])
        assert events[0] == "AccountCreated" and events[-1] == "AccountClosed"
        assert own["timestamp"].iloc[0] == created_at and own["timestamp"].iloc[-1] == last_at
        assert own["actor"].iloc[-1] == "flexmeasures:import"
        # its user, deleted with it, was created in it and erased
        member = log[log["event"] == "UserCreated"]["aggregate_id"].iloc[0]
        user = model.get_user(member)
        assert user is not None and user.erased and user.account_id == account.id
    finally:
        model.close()
    assert _import(url, flexmeasures)["changes_recorded"] == 0


def test_a_user_moved_by_sql_and_a_role_described_anew_are_mirrored(
    url: str, flexmeasures: FlexMeasures
) -> None:
    mover = _email("mover")
    mover_id = flexmeasures.do("create_user", email=mover, account="Client BV", roles=[])
    _import(url, flexmeasures)
    description = f"Reads everything ({uuid4().hex[:6]})"
    flexmeasures.do(
        "sql",
        statement="UPDATE fm_user SET account_id = (SELECT id FROM account WHERE name ="
        " 'Seita BV') WHERE id = :u",
        params={"u": mover_id},
    )
    flexmeasures.do(
        "sql",
        statement="UPDATE role SET description = :d WHERE name = 'admin-reader'",
        params={"d": description},
    )
    # `follow` records them (one poll), as `import` would
    followed = CliRunner().invoke(
        main,
        ["--db", url, "--json", "flexmeasures", "follow", "--from", flexmeasures.url,
         "--interval", "0.1", "--polls", "1"],
    )  # fmt: skip
    assert followed.exit_code == 0, followed.output
    assert json.loads(followed.stdout)["changes_recorded"] == 2, followed.stdout
    model = ReadModel(url)
    model.catch_up()
    try:
        seita = next(a for a in model.list_accounts() if a.name == "Seita BV")
        user = _ledger_user(model, mover)
        assert user.account_id == seita.id
        assert mover in {u.email for u in model.list_users(account_id=seita.id)}
        roles = {role.name: role.description for role in model.list_roles()}
        assert roles["admin-reader"] == description
        log = model.audit_log()
        moved = log[(log["event"] == "UserMoved") & (log["aggregate_id"] == user.id)]
        assert list(moved["actor"]) == ["flexmeasures:import"]
        described = log[log["event"] == "RoleDescribed"]
        assert list(described["description"])[-1] == description
    finally:
        model.close()
    with Audit(url) as audit:
        movers = audit.report("joiners-movers-leavers", since="2020-01-01T00:00:00+00:00")
    assert mover in set(movers[movers["event"] == "UserMoved"]["email"])
    assert _import(url, flexmeasures)["changes_recorded"] == 0


def test_an_unrecognised_entry_about_a_user_is_erased_with_the_user(
    url: str, flexmeasures: FlexMeasures
) -> None:
    email = _email("reset")
    fm_id = flexmeasures.do("create_user", email=email, account="Client BV", roles=[])
    flexmeasures.do(
        "api", method="PATCH", path=f"/api/v3_0/users/{fm_id}/password-reset",
        as_email="root@seita.example",
    )  # fmt: skip
    username = email.split("@")[0]
    entry = f"Password reset for user {username}"
    _import(url, flexmeasures)
    model = ReadModel(url)
    model.catch_up()
    try:
        user = _ledger_user(model, email)
        log = model.audit_log()
        kept = log[log["event"] == "UnrecognisedEntryRecorded"]
        assert entry in set(kept["text"])
        with Ledger(url) as led:
            key = led.side.select_one(side.SELECT_KEY_FOR_USER, (str(user.id),))
            assert key is not None
            needles = {"text": entry.encode(), "key": key["secret"].encode()}
            # sealed: the text was never on disk in the open
            assert on_disk(url, needles) == {"key"}
            led.erase_user(user.id, actor="cli:test", reason="GDPR request")
            assert on_disk(url, needles) == set()
        model.catch_up()
        log = model.audit_log()
        mine = log[
            (log["event"] == "UnrecognisedEntryRecorded")
            & (log["affected_user_id"] == str(user.id))
        ]
        # "Password reset for user X" and "Reset password instructions sent for user X"
        assert len(mine) >= 1 and set(mine["text"]) == {ERASED}
        assert entry not in set(log[log["event"] == "UnrecognisedEntryRecorded"]["text"])
    finally:
        model.close()
    exported = CliRunner().invoke(main, ["--db", url, "audit", "export", "--format", "jsonl"])
    assert exported.exit_code == 0, exported.output
    assert entry not in exported.stdout


def test_a_role_whose_description_the_ledger_refuses_is_defined_without_it_and_its_grant_kept(
    url: str, flexmeasures: FlexMeasures
) -> None:
    role = f"operator-{uuid4().hex[:6]}"
    flexmeasures.do(
        "sql",
        statement="INSERT INTO role (name, description) VALUES (:r, :d)",
        params={"r": role, "d": "Runs the plant.\r\nNight shift."},
    )
    email = _email("operator")
    fm_id = flexmeasures.do("create_user", email=email, account="Client BV", roles=[])
    flexmeasures.do(
        "sql",
        statement="INSERT INTO roles_users (user_id, role_id) SELECT :u, id FROM role"
        " WHERE name = :r",
        params={"u": fm_id, "r": role},
    )
    summary = _import(url, flexmeasures)
    refused = [p for p in summary["problems"] if f"Role {role!r}: description not mirrored" in p]
    assert len(refused) == 1, summary["problems"]
    model = ReadModel(url)
    model.catch_up()
    try:
        user = _ledger_user(model, email)
        assert model.has_role(user.id, role)
        assert {r.name: r.description for r in model.list_roles()}[role] is None
    finally:
        model.close()
    # a later description change the ledger refuses blocks nothing either
    flexmeasures.do(
        "sql",
        statement="UPDATE role SET description = :d WHERE name = :r",
        params={"r": role, "d": "Day shift.\r\nNight shift."},
    )
    flexmeasures.do(
        "sql",
        statement="UPDATE fm_user SET timezone = 'Europe/Paris' WHERE id = :u",
        params={"u": fm_id},
    )
    again = _import(url, flexmeasures)
    assert [p for p in again["problems"] if f"Role {role!r}: description not mirrored" in p]
    model = ReadModel(url)
    model.catch_up()
    try:
        user = _ledger_user(model, email)
        assert user.timezone == "Europe/Paris" and model.has_role(user.id, role)
    finally:
        model.close()


def test_an_account_updated_entry_stays_readable_when_the_acting_admin_is_erased(
    url: str, flexmeasures: FlexMeasures
) -> None:
    _import(url, flexmeasures)
    model = ReadModel(url)
    model.catch_up()
    try:
        root = _ledger_user(model, "root@seita.example")
        log = model.audit_log()
        kept = log[log["event"] == "UnrecognisedEntryRecorded"]
        updates = kept[kept["text"].str.startswith("Account Updated")]
        assert len(updates) >= 1
        assert not (updates["affected_user_id"] == str(root.id)).any()
        texts = set(updates["text"])
        with Ledger(url) as led:
            led.erase_user(root.id, actor="cli:test", reason="GDPR request")
        model.catch_up()
        log = model.audit_log()
        kept = log[log["event"] == "UnrecognisedEntryRecorded"]
        assert texts <= set(kept["text"])
        assert ERASED not in texts
    finally:
        model.close()


def test_a_user_moved_before_the_import_is_created_in_its_first_account_then_moved(
    url: str, flexmeasures: FlexMeasures
) -> None:
    kept, doomed = f"Origin {uuid4().hex[:8]}", f"Left {uuid4().hex[:8]}"
    movers = {kept: _email("from-kept"), doomed: _email("from-doomed")}
    for name, email in movers.items():
        flexmeasures.do("cli", args=["add", "account", "--name", name])
        flexmeasures.do("create_user", email=email, account=name, roles=["account-admin"])
        flexmeasures.do(
            "sql",
            statement="UPDATE fm_user SET account_id = (SELECT id FROM account WHERE name ="
            " 'Seita BV') WHERE email = :e",
            params={"e": email},
        )
    doomed_id = flexmeasures.do("account_id", name=doomed)
    flexmeasures.do("cli", args=["delete", "account", "--id", str(doomed_id), "--force"])
    # a creation row naming an account FlexMeasures never had: created where the user is now
    stray = _email("stray")
    stray_id = flexmeasures.do("create_user", email=stray, account="Client BV", roles=[])
    flexmeasures.do(
        "sql",
        statement="UPDATE audit_log SET affected_account_id = 987654321 WHERE affected_user_id"
        " = :u AND event LIKE 'User % created'",
        params={"u": stray_id},
    )
    _import(url, flexmeasures)
    model = ReadModel(url)
    model.catch_up()
    try:
        accounts = {a.name: a.id for a in model.list_accounts(include_closed=True)}
        log = model.audit_log()
        for name, email in movers.items():
            user = _ledger_user(model, email)
            assert user.account_id == accounts["Seita BV"] and user.active
            assert model.has_role(user.id, "account-admin")
            own = log[log["aggregate_id"] == user.id]
            created = own[own["event"] == "UserCreated"]
            assert [str(a) for a in created["account_id"]] == [str(accounts[name])], name
            moved = own[own["event"] == "UserMoved"]
            assert list(moved["actor"]) == ["flexmeasures:import"], name
            assert "UserDeactivated" not in set(own["event"]), name
        assert model.get_account(accounts[doomed]).closed
        user = _ledger_user(model, stray)
        assert user.account_id == accounts["Client BV"] and user.active
        assert "UserMoved" not in set(log[log["aggregate_id"] == user.id]["event"])
    finally:
        model.close()
    assert _import(url, flexmeasures)["changes_recorded"] == 0
