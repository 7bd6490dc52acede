"""Attacks on the read API from outside: each test is an attack that once succeeded (a leak, a
500, a bypass), kept so that it stays repelled."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from ledger import Ledger
from projections.api import create_app
from tests.conftest import ADMIN

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


def serve(url: str, address: str = "192.0.2.7") -> TestClient:
    return TestClient(create_app(url), client=(address, 50000), raise_server_exceptions=False)


@pytest.fixture
def client(url: str, people: dict[str, UUID]) -> Iterator[TestClient]:
    with serve(url) as test_client:
        yield test_client
    test_client.app.state.services.close()  # type: ignore[attr-defined]


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
