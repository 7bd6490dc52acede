"""`ledger flexmeasures import` against a real FlexMeasures 1.0.1, populated through its CLI,
services, UI login and HTTP API: the ledger's read models then equal FlexMeasures' tables, its
history answers as FlexMeasures stood, a second import records nothing, and the FlexMeasures
database is never written."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
import sqlalchemy.exc
from click.testing import CliRunner
from fastapi.testclient import TestClient
from flexmeasures_client import FlexMeasuresClient
from sqlalchemy import text

from ledger import Ledger, ValidationError
from ledger.cli import main
from ledger.flexmeasures.mirror import Mirror
from ledger.flexmeasures.source import engine_for
from projections import ReadModel
from projections.api import create_app
from tests.flexmeasures_harness.driver import FlexMeasures
from tests.flexmeasures_harness.fixtures import audit_rows, running_flexmeasures


@pytest.fixture(scope="module")
def flexmeasures(request: pytest.FixtureRequest) -> Iterator[FlexMeasures]:
    with running_flexmeasures(request) as started:
        started.do("populate")
        yield started


def _import(url: str, flexmeasures: FlexMeasures, *extra: str) -> Any:
    result = CliRunner().invoke(
        main, ["--db", url, "--json", "flexmeasures", "import", "--from", flexmeasures.url, *extra]
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _ids(url: str, flexmeasures: FlexMeasures) -> dict[tuple[str, int], UUID]:
    mirror = Mirror(url, flexmeasures.url)
    try:
        return mirror.mirrored_ids()
    finally:
        mirror.close()


def _table_digest(flexmeasures: FlexMeasures) -> list[tuple[Any, ...]]:
    return flexmeasures.query(
        "SELECT relname, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables ORDER BY 1"
    )


@pytest.fixture
def imported(url: str, flexmeasures: FlexMeasures) -> Iterator[ReadModel]:
    _import(url, flexmeasures)
    model = ReadModel(url)
    model.catch_up()
    try:
        yield model
    finally:
        model.close()


def test_the_read_models_equal_flexmeasures_tables(
    url: str, flexmeasures: FlexMeasures, imported: ReadModel
) -> None:
    ids = _ids(url, flexmeasures)
    users = flexmeasures.query(
        "SELECT id, email, username, active, timezone, account_id, coalesce(login_count, 0),"
        " last_login_at FROM fm_user"
    )
    assert len(users) == 4
    for fm_id, email, username, active, timezone, account_id, logins, last_login in users:
        user = imported.get_user(ids[("user", fm_id)])
        assert user is not None
        assert (user.email, user.username, user.active, user.timezone) == (
            email, username, active, timezone,
        )  # fmt: skip
        assert user.account_id == ids[("account", account_id)]
        assert user.login_count == logins
        expected_login = None if last_login is None else last_login.replace(tzinfo=UTC)
        assert user.last_login_at == expected_login
        held = flexmeasures.query(
            "SELECT r.name FROM roles_users ru JOIN role r ON r.id = ru.role_id"
            " WHERE ru.user_id = %(id)s",
            id=fm_id,
        )
        assert imported.roles(user.id, effective=False) == {name for (name,) in held}
    listed = {u.email for u in imported.list_users(include_inactive=True) if not u.erased}
    assert listed == {email for _, email, *_ in users}
    accounts = flexmeasures.query(
        "SELECT id, name, primary_color, secondary_color, consultancy_account_id FROM account"
    )
    for fm_id, name, primary, secondary, consultancy in accounts:
        account = imported.get_account(ids[("account", fm_id)])
        assert account is not None
        assert (account.name, account.primary_color, account.secondary_color) == (
            name, primary, secondary,
        )  # fmt: skip
        expected = None if consultancy is None else ids[("account", consultancy)]
        assert account.consultancy_account_id == expected
        held = flexmeasures.query(
            "SELECT r.name FROM roles_accounts ra JOIN account_role r ON r.id = ra.role_id"
            " WHERE ra.account_id = %(id)s",
            id=fm_id,
        )
        assert set(account.account_roles) == {name for (name,) in held}
    assert {r.name for r in imported.list_roles()} == {
        name for (name,) in flexmeasures.query("SELECT name FROM role")
    }
    client_bv = next(ids[("account", i)] for i, name, *_ in accounts if name == "Client BV")
    notes = imported.search_annotations(client_bv)
    assert [(n.content, n.type) for n in notes] == [("Maintenance", "alert")]


def test_history_answers_as_flexmeasures_stood_then(
    url: str, flexmeasures: FlexMeasures, imported: ReadModel
) -> None:
    ids = _ids(url, flexmeasures)
    rows = {row["id"]: row for row in audit_rows(flexmeasures)}
    granted = next(r for r in rows.values() if r["event"] == "Added role(s): [admin-reader].")
    removed = next(r for r in rows.values() if r["event"] == "Removed role(s): [account-admin].")
    bob = ids[("user", granted["affected_user_id"])]
    ann = ids[("user", removed["affected_user_id"])]
    moment = timedelta(milliseconds=1)
    granted_at = granted["at"].replace(tzinfo=UTC)
    removed_at = removed["at"].replace(tzinfo=UTC)
    assert not imported.has_role(bob, "admin-reader", at=granted_at - moment)
    assert imported.has_role(bob, "admin-reader", at=granted_at)
    assert not imported.has_role(bob, "admin-reader")  # deactivated since
    # account-admin was given at creation (no row) and removed by a row: inferred at creation
    assert imported.has_role(ann, "account-admin", at=removed_at - moment)
    assert not imported.has_role(ann, "account-admin", at=removed_at)
    log = imported.audit_log(bob)
    mirrored = log[log["reason"] == f"FlexMeasures audit_log row {granted['id']}"]
    # the acting user by FlexMeasures id: a name is personal data, an actor is never erased
    assert list(mirrored["actor"]) == [f"flexmeasures:{granted['active_user_id']}"]
    assert list(mirrored["timestamp"]) == [granted_at]
    names = {row["active_user_name"] for row in rows.values()} - {None}
    assert names and not names & {
        a.removeprefix("flexmeasures:") for a in imported.audit_log()["actor"]
    }


def test_a_deleted_user_is_created_and_erased_and_passwords_are_not_copied(
    url: str, flexmeasures: FlexMeasures, imported: ReadModel
) -> None:
    erased = [u for u in imported.list_users(include_inactive=True) if u.erased]
    assert len(erased) == 1 and not erased[0].active
    with Ledger(url) as led:
        for user in imported.list_users(include_inactive=True):
            assert led.credential_version(user.id) is None


def test_unrecognised_rows_are_kept_with_their_text_and_listed_by_status(
    url: str, flexmeasures: FlexMeasures, imported: ReadModel
) -> None:
    log = imported.audit_log()
    kept = log[log["event"] == "UnrecognisedEntryRecorded"]
    texts = {row["text"] for row in kept.to_dict("records")}
    assert "Password reset for user ann" in texts
    result = CliRunner().invoke(
        main, ["--db", url, "flexmeasures", "status", "--from", flexmeasures.url]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    # the deleted user's erased stand-in is counted apart
    assert "users: 4 mirrored (+1 deleted in FlexMeasures, erased here), 4 in FlexMeasures" in lines
    assert "accounts: 2 mirrored, 2 in FlexMeasures" in lines
    assert any(line.startswith("cursor: audit_log row 14 of 14") for line in lines)
    assert "unrecognised audit_log rows: 3" in lines
    assert "  row 12: Password reset for user ann" in lines


def test_importing_twice_records_nothing_and_never_writes_to_flexmeasures(
    url: str, flexmeasures: FlexMeasures, imported: ReadModel
) -> None:
    before = _table_digest(flexmeasures)
    with Ledger(url) as led:
        position = led.recorder.max_notification_id()
    again = _import(url, flexmeasures)
    assert again["changes_recorded"] == 0
    with Ledger(url) as led:
        assert led.recorder.max_notification_id() == position
    assert _table_digest(flexmeasures) == before
    verify = CliRunner().invoke(main, ["--db", url, "audit", "verify"])
    assert verify.exit_code == 0, verify.output


def test_the_connection_to_flexmeasures_refuses_writes(flexmeasures: FlexMeasures) -> None:
    engine = engine_for(flexmeasures.url)
    try:
        with engine.connect() as conn, pytest.raises(sqlalchemy.exc.InternalError) as refused:
            conn.execute(text("UPDATE fm_user SET timezone = 'UTC'"))
        assert "read-only transaction" in str(refused.value)
    finally:
        engine.dispose()


@pytest.mark.parametrize("url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("sqlite:///fm.db", "FlexMeasures runs on PostgreSQL"),
        ("not a url", "invalid FlexMeasures database URL 'not a url'"),
        ("postgresql://postgres@127.0.0.1:1/none", "database problem"),
    ],
)
def test_a_bad_source_is_one_line_and_records_nothing(url: str, source: str, message: str) -> None:
    result = subprocess.run(
        [str(Path(sys.executable).with_name("ledger")), "--db", url, "flexmeasures", "import",
         "--from", source],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    with Ledger(url) as led:
        assert led.recorder.max_notification_id() in (None, 0)


def _audit_routes_answer_with_flexmeasures_ids(
    client: TestClient,
    headers: dict[str, str],
    flexmeasures: FlexMeasures,
    ids: dict[tuple[str, int], UUID],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The audit-log routes and the change feed name mirrored users and accounts by their
    FlexMeasures ids in `flexmeasures` mode, and by UUIDs in the default mode."""
    [(ann, client_bv)] = flexmeasures.query(
        "SELECT id, account_id FROM fm_user WHERE email = 'ann@client.example'"
    )
    [(root,)] = flexmeasures.query("SELECT id FROM fm_user WHERE email = 'root@seita.example'")
    mirrored = {str(ledger_id) for (kind, _), ledger_id in ids.items() if kind != "role"}
    id_fields = ("active_user_id", "affected_user_id", "affected_account_id")
    log = client.get(f"/api/v3_0/users/{ann}/auditlog", headers=headers).json()
    assert {(e["affected_user_id"], e["affected_account_id"]) for e in log} == {(ann, client_bv)}
    assert root in {e["active_user_id"] for e in log}  # "Removed role(s)" by root, via the API
    paged = client.get(
        f"/api/v3_0/accounts/{client_bv}/auditlog", headers=headers, params={"page": 1}
    ).json()
    assert paged["data"] and {e["affected_account_id"] for e in paged["data"]} == {client_bv}
    feed = client.get("/api/v3_0/auditlog/changes", headers=headers, params={"limit": 1000}).json()[
        "changes"
    ]
    for change in feed:
        assert not {str(change[field]) for field in id_fields} & mirrored, change
        if change["aggregate_type"] in ("User", "Account"):
            assert isinstance(change["aggregate_id"], int), change
    monkeypatch.setenv("LEDGER_API_IDS", "ledger")
    log = client.get(f"/api/v3_0/users/{ann}/auditlog", headers=headers).json()
    assert {e["affected_user_id"] for e in log} == {str(ids[("user", ann)])}
    monkeypatch.setenv("LEDGER_API_IDS", "flexmeasures")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("url", ["sqlite"], indirect=True)
def test_the_read_api_takes_and_answers_flexmeasures_ids(
    url: str, flexmeasures: FlexMeasures, imported: ReadModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _ids(url, flexmeasures)
    [(root, account)] = flexmeasures.query(
        "SELECT id, account_id FROM fm_user WHERE email = 'root@seita.example'"
    )
    [(client_bv, seita)] = flexmeasures.query(
        "SELECT id, consultancy_account_id FROM account WHERE name = 'Client BV'"
    )
    [(admin_role,)] = flexmeasures.query("SELECT id FROM role WHERE name = 'admin'")
    with Ledger(url) as led:  # the ledger's own API login: FlexMeasures' password is not copied
        led.set_password("root@seita.example", "api-test-password", actor="cli:test")
    client = TestClient(create_app(url))
    token = client.post(
        "/api/requestAuthToken",
        json={"email": "root@seita.example", "password": "api-test-password"},
    ).json()["auth_token"]
    headers = {"Authorization": token}
    answer = client.get(f"/api/v3_0/users/{root}", headers=headers).json()
    assert answer["id"] == str(ids[("user", root)])
    assert answer["flexmeasures_roles"] == ["admin"]
    monkeypatch.setenv("LEDGER_API_IDS", "flexmeasures")
    answer = client.get(f"/api/v3_0/users/{root}", headers=headers).json()
    assert (answer["id"], answer["account_id"], answer["flexmeasures_roles"]) == (
        root, account, [admin_role],
    )  # fmt: skip
    by_uuid = client.get(f"/api/v3_0/users/{ids[('user', root)]}", headers=headers).json()
    assert by_uuid == answer
    account_answer = client.get(f"/api/v3_0/accounts/{client_bv}", headers=headers).json()
    assert (account_answer["id"], account_answer["consultancy_account_id"]) == (client_bv, seita)
    users = client.get(
        "/api/v3_0/users", headers=headers, params={"account_id": str(client_bv)}
    ).json()
    assert {u["email"] for u in users} == {"ann@client.example"}
    missing = client.get("/api/v3_0/users/999999", headers=headers)
    assert missing.status_code == 404
    assert missing.json()["message"] == "user 999999 not found"
    assert client.get("/api/v3_0/users/not-an-id", headers=headers).status_code == 422
    _audit_routes_answer_with_flexmeasures_ids(client, headers, flexmeasures, ids, monkeypatch)
    client.app.state.services.close()  # type: ignore[attr-defined]

    port = _free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("ledger")), "--db", url, "serve", "--port", str(port)],
        env={**os.environ, "LEDGER_API_IDS": "flexmeasures"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "ledger serve did not start"
                time.sleep(0.2)

        async def fetch() -> tuple[Any, Any]:
            fm_client = FlexMeasuresClient(
                email="root@seita.example",
                password="api-test-password",
                host=f"127.0.0.1:{port}",
            )
            try:
                return await fm_client.get_user(), await fm_client.get_account()
            finally:
                await fm_client.close()

        user, own_account = asyncio.run(fetch())
        assert user["id"] == root and user["flexmeasures_roles"] == [admin_role]
        assert own_account["id"] == account and own_account["name"] == "Seita BV"
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.parametrize("url", ["sqlite"], indirect=True)
def test_bad_settings_and_options_are_one_line(
    url: str, flexmeasures: FlexMeasures, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEDGER_API_IDS", "fm\x1b[2J")
    with pytest.raises(ValidationError, match=r"invalid LEDGER_API_IDS 'fm\\x1b\[2J'"):
        create_app(url)
    monkeypatch.delenv("LEDGER_API_IDS")
    interval = CliRunner().invoke(
        main, ["--db", url, "flexmeasures", "follow", "--from", flexmeasures.url, "--interval", "0"]
    )
    assert interval.exit_code == 2
    never = CliRunner().invoke(
        main, ["--db", url, "flexmeasures", "status", "--from", flexmeasures.url]
    )
    assert never.exit_code == 1
    assert "no ledger" in never.output
