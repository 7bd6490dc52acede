"""Attacks on the read API from outside: each test is an attack that once succeeded (a leak, a
500, a bypass), kept so that it stays repelled."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from fastapi.testclient import TestClient

import projections.projector as projector_module
from ledger import Ledger, ValidationError
from ledger.domain import User
from projections import ReadModel
from projections.api import create_app
from tests.conftest import ADMIN
from tests.helpers import api_client

PASSWORD = "correct horse"
SECRET = "s3cret-Passw0rd"


@pytest.fixture
def people(led: Ledger, acme: UUID) -> dict[str, UUID]:
    """ann (admin) and rené, whose email is not ASCII, both with passwords."""
    return {
        "ann": led.create_user(
            "ann@acme.org", account_id=acme, actor=ADMIN, roles=["admin"], password=PASSWORD
        ),
        "rené": led.create_user(
            "rené@bücher.example", account_id=acme, actor=ADMIN, password=PASSWORD
        ),
    }


@pytest.fixture
def client(url: str, people: dict[str, UUID]) -> Iterator[TestClient]:
    with api_client(url, "192.0.2.7") as test_client:
        yield test_client


def token(client: TestClient, email: str) -> str:
    response = client.post("/api/requestAuthToken", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return str(response.json()["auth_token"])


def events(led: Ledger) -> int:
    return led.recorder.max_notification_id() or 0


# -- a rejected login body never echoes the password -------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"email": "ann@acme.org", "password": [SECRET]},
        {"email": None, "password": SECRET},
        {"email": "ann@acme.org", "password": {"value": SECRET}},
        ["ann@acme.org", SECRET],
        SECRET,
    ],
)
def test_a_malformed_login_body_is_a_422_that_does_not_echo_the_password(
    client: TestClient, led: Ledger, body: Any
) -> None:
    before = events(led)
    response = client.post("/api/requestAuthToken", json=body)
    assert response.status_code == 422
    assert SECRET not in response.text
    assert set(response.json()) == {"message", "status"}
    assert "Input should" not in response.json()["message"]  # in the project's words
    assert events(led) == before


def test_a_login_body_that_is_not_json_is_named_as_such(client: TestClient) -> None:
    response = client.post(
        "/api/requestAuthToken",
        content=b'{"email": "ann@acme.org", "password": "' + SECRET.encode(),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert SECRET not in response.text
    assert response.json()["message"] == "the request body is not valid JSON (at character 38)"


# -- a long list of sources is a query, not a crash --------------------------------------------


def test_a_thousand_sources_in_an_annotation_search_answer(
    client: TestClient, led: Ledger, acme: UUID
) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    led.add_annotation(
        acme, content="found", start=start, end=start.replace(day=2), source="s1499", actor=ADMIN
    )
    admin = {"Authorization": token(client, "ann@acme.org")}
    sources = [("source", f"s{i}") for i in range(1500)] + [("source", str(uuid4()))] * 500
    response = client.get(f"/api/v3_0/accounts/{acme}/annotations", headers=admin, params=sources)
    assert response.status_code == 200, response.text
    assert [a["content"] for a in response.json()] == ["found"]


def test_more_sources_than_a_search_takes_are_a_validation_error(
    led: Ledger, acme: UUID, rm: ReadModel
) -> None:
    with pytest.raises(ValidationError, match="9000 sources given, at most 8192"):
        rm.search_annotations(acme, source=[f"s{i}" for i in range(9000)])


# -- the throttle counts an email however it is spelt ------------------------------------------


def test_other_spellings_of_an_email_share_its_failed_login_budget(
    url: str, people: dict[str, UUID], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEDGER_LOGIN_MAX_FAILURES", "2")
    app = create_app(url)
    spellings = [
        "rené@bücher.example",
        unicodedata.normalize("NFD", "rené@bücher.example"),
        "rené@xn--bcher-kva.example",
        unicodedata.normalize("NFD", "rené@xn--bcher-kva.example"),
    ]
    statuses = []
    for number, spelling in enumerate(spellings):  # each from an address of its own
        with TestClient(app, client=(f"198.51.100.{number}", 50000)) as attacker:
            response = attacker.post(
                "/api/requestAuthToken", json={"email": spelling, "password": "guess"}
            )
            statuses.append(response.status_code)
    app.state.services.close()
    assert statuses == [401, 401, 429, 429]


# -- a revoked role stops granting reads at once, even while projecting fails ------------------


def test_a_revoked_admin_reads_no_other_tenant_while_the_projection_lags(
    client: TestClient, led: Ledger, acme: UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = led.create_account("Other", actor=ADMIN)
    ann = {"Authorization": token(client, "ann@acme.org")}
    assert client.get(f"/api/v3_0/accounts/{other}", headers=ann).status_code == 200

    def failing(*args: object) -> None:
        raise RuntimeError("handler crashed")

    handlers: dict[Any, Any] = projector_module._HANDLERS
    monkeypatch.setitem(handlers, User.UserCreated, failing)
    led.create_user("eve@acme.org", account_id=acme, actor=ADMIN)  # the projection stops here
    led.revoke_role("ann@acme.org", "admin", actor=ADMIN)
    response = client.get(f"/api/v3_0/accounts/{other}", headers=ann)
    assert client.get("/api/ops/ping").json()["projection"] == "failing"
    assert response.status_code == 403, response.text
    listed = client.get("/api/v3_0/accounts", headers=ann).json()
    assert [account["name"] for account in listed] == ["Acme"]


# -- X-Forwarded-For picks no address unless a proxy is trusted --------------------------------


def failed_logins_from_spoofed_addresses(url: str, trusted_proxies: str | None) -> list[int]:
    """Two failed logins to a real `ledger serve` (one failure allowed), each claiming another
    client address in X-Forwarded-For: their statuses."""
    environment = {**os.environ, "LEDGER_LOGIN_MAX_FAILURES": "1"}
    environment.pop("FORWARDED_ALLOW_IPS", None)
    if trusted_proxies is not None:
        environment["FORWARDED_ALLOW_IPS"] = trusted_proxies
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    command = [str(Path(sys.executable).parent / "ledger"), "--db", url, "serve", "--port"]
    server = subprocess.Popen(
        [*command, str(port)], env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/api/ops/ping", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                assert time.monotonic() < deadline, "ledger serve did not start"
                time.sleep(0.2)
        return [
            httpx.post(
                f"{base}/api/requestAuthToken",
                json={"email": f"nobody{number}@acme.org", "password": "guess"},
                headers={"X-Forwarded-For": f"203.0.113.{number}"},
                timeout=30,
            ).status_code
            for number in range(2)
        ]
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_local_client_cannot_pick_its_address_for_the_throttle(
    url: str, people: dict[str, UUID]
) -> None:
    assert failed_logins_from_spoofed_addresses(url, None) == [401, 429]
    # behind a proxy named as trusted, its X-Forwarded-For is the client's address
    assert failed_logins_from_spoofed_addresses(url, "127.0.0.1") == [401, 401]


# -- an audit log names no user of a tenant the caller may not read ----------------------------


def test_an_audit_log_does_not_name_an_actor_from_another_tenant(
    client: TestClient, led: Ledger, acme: UUID, people: dict[str, UUID]
) -> None:
    rival = led.create_account("Rival", actor=ADMIN)
    outsider = led.create_user("mallory@rival.example", account_id=rival, actor=ADMIN)
    led.update_user(outsider, username="mallory.private", actor=ADMIN)
    led.set_password(people["rené"], PASSWORD, actor=str(outsider))
    own = client.get(
        f"/api/v3_0/users/{people['rené']}/auditlog",
        headers={"Authorization": token(client, "rené@bücher.example")},
    )
    assert own.status_code == 200
    assert "mallory" not in own.text
    [by_outsider] = [e for e in own.json() if e["active_user_id"] == str(outsider)]
    assert by_outsider["active_user_name"] is None
    admin = client.get(
        f"/api/v3_0/users/{people['rené']}/auditlog",
        headers={"Authorization": token(client, "ann@acme.org")},
    )
    assert "mallory.private" in {e["active_user_name"] for e in admin.json()}
