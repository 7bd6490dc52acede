"""End to end: a real `ledger serve` process on 127.0.0.1, read with httpx and with the public
flexmeasures-client package."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from flexmeasures_client import FlexMeasuresClient
from packaging.version import Version

from tests.test_api import CALLER_EMAIL, PASSWORD, World, build_world


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, str]]:
    world = build_world(f"sqlite:///{tmp_path_factory.mktemp('e2e') / 'ledger.db'}")
    port = free_port()
    ledger_script = Path(sys.executable).parent / "ledger"
    server = subprocess.Popen(
        [
            str(ledger_script),
            "--db",
            world.url,
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/api/", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            assert time.monotonic() < deadline, "ledger serve did not start"
            time.sleep(0.2)
        yield world, base
    finally:
        server.terminate()
        server.wait(timeout=30)
        world.client.app.state.services.close()  # type: ignore[attr-defined]
        world.led.close()


def test_a_real_server_with_httpx(served: tuple[World, str]) -> None:
    world, base = served
    with httpx.Client(base_url=base, timeout=10) as http:
        token = http.post(
            "/api/requestAuthToken",
            json={"email": CALLER_EMAIL["consultant"], "password": PASSWORD},
        ).json()["auth_token"]
        accounts = http.get("/api/v3_0/accounts", headers={"Authorization": f"Bearer {token}"})
        assert accounts.status_code == 200
        assert {a["name"] for a in accounts.json()} == {"Seita", "Client"}
        client_users = http.get(
            "/api/v3_0/users",
            headers={"Authorization": token},
            params={"account_id": str(world.accounts["client"])},
        )
        assert {u["email"] for u in client_users.json()} == {
            CALLER_EMAIL["client_admin"],
            CALLER_EMAIL["client_plain"],
            "member@client.example",
        }
        foreign = http.get(
            f"/api/v3_0/accounts/{world.accounts['foreign']}", headers={"Authorization": token}
        )
        assert foreign.status_code == 403
        assert http.get("/api/v3_0/accounts").status_code == 401
        assert http.get("/openapi.json").json()["info"]["title"] == "Account Ledger read API"
        assert http.get("/docs").status_code == 200


def test_the_flexmeasures_client_package(served: tuple[World, str]) -> None:
    world, base = served

    async def fetch() -> tuple[dict, dict]:  # type: ignore[type-arg]
        client = FlexMeasuresClient(
            email=CALLER_EMAIL["client_admin"], password=PASSWORD, host=base.removeprefix("http://")
        )
        try:
            user = await client.get_user()
            account = await client.get_account()
        finally:
            await client.close()
        assert user is not None and account is not None
        return user, account

    user, account = asyncio.run(fetch())
    assert user["id"] == str(world.users["client_admin"])
    assert user["email"] == CALLER_EMAIL["client_admin"]
    assert user["flexmeasures_roles"] == ["account-admin"]
    assert account["id"] == str(world.accounts["client"]) and account["name"] == "Client"


def test_the_flexmeasures_client_parses_the_server_version(served: tuple[World, str]) -> None:
    """What the ledger does not serve fails in the client with its own clear complaint about
    the server's version, not with a crash parsing that version."""

    async def ask() -> tuple[str | None, list[str]]:
        client = FlexMeasuresClient(
            email=CALLER_EMAIL["client_admin"], password=PASSWORD, host=served[1][7:]
        )
        complaints = []
        try:
            versions = await client.get_versions()
            for call in (
                client.get_asset_types(),
                client.get_sensor_data(1, "2026-01-01T00:00:00+00:00", "PT1H", "MW", "PT1H"),
            ):
                try:
                    await call
                except Exception as error:  # which one is the point
                    complaints.append(type(error).__name__)
        finally:
            await client.close()
        return versions["server_version"], complaints

    server_version, complaints = asyncio.run(ask())
    assert server_version is not None and Version(server_version)
    assert complaints == ["InsufficientServerVersionError", "InsufficientServerVersionError"]
