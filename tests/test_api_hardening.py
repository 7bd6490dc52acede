"""The read API tells the truth under stress: logins without an account-existence oracle,
throttled and recorded when they fail; tokens that stay dead; settings checked at start-up;
answers from the last consistent state when projecting fails; FlexMeasures' version, ping and
error shapes."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from argon2 import PasswordHasher
from click.testing import CliRunner
from fastapi.testclient import TestClient
from packaging.version import Version

import projections.projector as projector_module
from ledger import Ledger, NotFound, ValidationError
from ledger.audit import Audit
from ledger.cli import main
from ledger.domain import ERASED, User
from projections.api import create_app
from projections.api.auth import WRONG_CREDENTIALS
from tests.conftest import ADMIN
from tests.helpers import api_client

PASSWORD = "correct horse"
ADDRESS = "192.0.2.7"


@pytest.fixture
def people(led: Ledger, acme: UUID) -> dict[str, UUID]:
    """ann (admin) and bob (deactivated) with passwords, carol without, dan erased."""
    users = {
        "ann": led.create_user(
            "ann@acme.org", account_id=acme, actor=ADMIN, roles=["admin"], password=PASSWORD
        ),
        "bob": led.create_user("bob@acme.org", account_id=acme, actor=ADMIN, password=PASSWORD),
        "carol": led.create_user("carol@acme.org", account_id=acme, actor=ADMIN),
        "dan": led.create_user("dan@acme.org", account_id=acme, actor=ADMIN, password=PASSWORD),
    }
    led.deactivate_user(users["bob"], actor=ADMIN)
    led.erase_user(users["dan"], actor=ADMIN, reason="GDPR")
    return users


@pytest.fixture
def client(url: str, people: dict[str, UUID]) -> Iterator[TestClient]:
    with api_client(url, ADDRESS) as test_client:
        yield test_client


def log_in(client: TestClient, email: str, password: str = PASSWORD) -> Any:
    return client.post("/api/requestAuthToken", json={"email": email, "password": password})


def token(client: TestClient, email: str) -> str:
    response = log_in(client, email)
    assert response.status_code == 200, response.text
    return str(response.json()["auth_token"])


def events(led: Ledger) -> int:
    return led.recorder.max_notification_id() or 0


# -- item 7: no account-existence oracle; failures throttled and recorded ----------------------


def test_every_refused_login_does_the_same_password_work(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    verifications: list[str] = []
    verify = PasswordHasher.verify

    def counted(self: PasswordHasher, hash: str, password: str) -> bool:
        verifications.append(password)
        return verify(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", counted)
    attempts = {
        "a wrong password": ("ann@acme.org", "wrong"),
        "an unknown email": ("nobody@acme.org", PASSWORD),
        "an inactive user": ("bob@acme.org", PASSWORD),
        "a user without a password": ("carol@acme.org", PASSWORD),
        "an erased user's email": ("dan@acme.org", PASSWORD),
    }
    for case, (email, password) in attempts.items():
        verifications.clear()
        response = log_in(client, email, password)
        assert response.status_code == 401, case
        assert response.json() == {"message": WRONG_CREDENTIALS, "status": "UNAUTHORIZED"}, case
        assert verifications == [password], case  # one argon2 verification, as for a real user


def test_failed_logins_are_security_events_that_a_report_lists(
    client: TestClient,
    led: Ledger,
    url: str,
    people: dict[str, UUID],
    caplog: pytest.LogCaptureFixture,
) -> None:
    since = datetime.now(UTC) - timedelta(minutes=1)
    before = events(led)
    assert log_in(client, "ann@acme.org", "guess-1").status_code == 401
    assert log_in(client, "bob@acme.org").status_code == 401  # the right password, inactive
    assert log_in(client, "carol@acme.org", "guess-2").status_code == 401
    assert events(led) == before + 3
    with caplog.at_level(logging.WARNING):
        assert log_in(client, "nobody@acme.org", "guess-3").status_code == 401
    assert events(led) == before + 3  # an unknown email is no event: one server log line
    [line] = [r.getMessage() for r in caplog.records if "failed login" in r.getMessage()]
    assert ADDRESS in line and "nobody" not in line and "guess-3" not in line

    recorded = [e for e in led.events.get(people["ann"]) if isinstance(e, User.LoginFailed)]
    assert [(e.reason_kind, e.ip, e.actor) for e in recorded] == [
        ("wrong-password", ADDRESS, "unauthenticated")
    ]
    stored = led.recorder.select_notifications(start=before + 1, limit=3)
    for notification in stored:  # the address sealed as personal data, no password anywhere
        assert ADDRESS.encode() not in notification.state and b"guess" not in notification.state

    with Audit(url) as audit:
        report = audit.report("failed-logins", since=since, until=datetime.now(UTC))
    assert list(zip(report["email"], report["reason_kind"], report["ip"], strict=True)) == [
        ("ann@acme.org", "wrong-password", ADDRESS),
        ("bob@acme.org", "inactive", ADDRESS),
        ("carol@acme.org", "no-password", ADDRESS),
    ]
    admin = {"Authorization": token(client, "ann@acme.org")}
    log = client.get(f"/api/v3_0/users/{people['ann']}/auditlog", headers=admin).json()
    assert "Login failed for user ann ('wrong-password')" in [entry["event"] for entry in log]

    led.erase_user(people["ann"], actor=ADMIN, reason="GDPR")
    with Audit(url) as audit:
        report = audit.report("failed-logins", since=since, until=datetime.now(UTC))
    assert report["ip"].tolist() == [ERASED, ADDRESS, ADDRESS]


def test_record_failed_login_checks_its_input(led: Ledger, people: dict[str, UUID]) -> None:
    before = events(led)
    with pytest.raises(ValidationError, match="reason_kind"):
        led.record_failed_login(people["ann"], reason_kind="bad-luck")
    with pytest.raises(ValidationError, match="ip"):
        led.record_failed_login(people["ann"], ip="not an address", reason_kind="wrong-password")
    with pytest.raises(NotFound):
        led.record_failed_login(UUID(int=7), reason_kind="wrong-password")
    assert events(led) == before
    # an erased user has no key left to seal an address with: the attempt is kept, not its ip
    assert led.record_failed_login(people["dan"], ip=ADDRESS, reason_kind="erased")
    last = list(led.events.get(people["dan"]))[-1]
    assert (type(last).__name__, last.reason_kind, last.ip) == ("LoginFailed", "erased", None)


def test_failed_logins_are_throttled_per_email_and_per_address(
    url: str, led: Ledger, people: dict[str, UUID], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEDGER_LOGIN_MAX_FAILURES", "3")
    monkeypatch.setenv("LEDGER_LOGIN_WINDOW", "3600")
    app = create_app(url)
    first, second, third, fourth = (
        TestClient(app, client=(f"192.0.2.{n}", 50000)) for n in (1, 2, 3, 4)
    )
    try:
        for guess in ("a", "b", "c"):
            assert log_in(first, "ann@acme.org", guess).status_code == 401
        before = events(led)
        refused = log_in(second, "ANN@acme.org")  # the right password, from another address
        assert refused.status_code == 429  # per email
        assert refused.json()["status"] == "TOO_MANY_REQUESTS"
        assert 3590 <= int(refused.headers["Retry-After"]) <= 3600
        assert events(led) == before  # a refused attempt is neither checked nor recorded
        assert log_in(first, "carol@acme.org").status_code == 429  # per address
        for email in ("carol@acme.org", "bob@acme.org", "nobody@acme.org"):
            assert log_in(third, email).status_code == 401
        assert log_in(third, "zoe@acme.org").status_code == 429  # unknown emails count too
        assert log_in(fourth, "zoe@acme.org").status_code == 401
    finally:
        app.state.services.close()

    monkeypatch.setenv("LEDGER_LOGIN_MAX_FAILURES", "1")
    monkeypatch.setenv("LEDGER_LOGIN_WINDOW", "1")
    app = create_app(url)
    try:
        client = TestClient(app, client=(ADDRESS, 50000))
        assert log_in(client, "ann@acme.org", "wrong").status_code == 401
        assert log_in(client, "ann@acme.org").status_code == 429
        time.sleep(1.1)  # the window passes
        assert log_in(client, "ann@acme.org").status_code == 200
    finally:
        app.state.services.close()


# -- item 8: a token issued before a deactivation never works again -----------------------------


def test_a_token_issued_before_a_deactivation_stays_dead_after_reactivation(
    client: TestClient, led: Ledger, people: dict[str, UUID]
) -> None:
    path = f"/api/v3_0/users/{people['ann']}"

    def status(issued: str) -> int:
        return int(client.get(path, headers={"Authorization": issued}).status_code)

    old = token(client, "ann@acme.org")
    assert status(old) == 200
    led.deactivate_user(people["ann"], actor=ADMIN)
    led.reactivate_user(people["ann"], actor=ADMIN)
    assert status(old) == 401
    new = token(client, "ann@acme.org")
    assert status(new) == 200
    led.set_password(people["ann"], "another", actor=ADMIN)
    led.set_password(people["ann"], PASSWORD, actor=ADMIN)
    assert status(new) == 401
    assert status(token(client, "ann@acme.org")) == 200


# -- item 10: settings checked at start-up ------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LEDGER_TOKEN_TTL", "abc"),
        ("LEDGER_TOKEN_TTL", "0"),
        ("LEDGER_LOGIN_MAX_FAILURES", "many"),
        ("LEDGER_LOGIN_WINDOW", "-5"),
    ],
)
def test_an_invalid_setting_stops_the_server_at_start_up(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    Ledger(url).close()  # a ledger to serve: without one, serve refuses before any setting
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=f"{variable} must be a whole number"):
        create_app(url)
    started: list[object] = []
    monkeypatch.setattr("uvicorn.run", lambda *args, **kwargs: started.append(args))
    result = CliRunner().invoke(main, ["--db", url, "serve"])
    assert result.exit_code == 1 and not started
    assert result.output.strip().count("\n") == 0 and variable in result.output


# -- item 2: answers from the last consistent state when projecting fails -----------------------


def test_a_failing_projection_leaves_the_api_answering_from_the_last_state(
    client: TestClient,
    led: Ledger,
    acme: UUID,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    admin = {"Authorization": token(client, "ann@acme.org")}
    before = client.get("/api/v3_0/users", headers=admin).json()
    led.create_user("eve@acme.org", account_id=acme, actor=ADMIN)

    def failing(*args: object) -> None:
        raise RuntimeError("handler crashed\nsecond line")

    original = projector_module._HANDLERS[User.UserCreated]
    monkeypatch.setitem(projector_module._HANDLERS, User.UserCreated, failing)
    with caplog.at_level(logging.ERROR):
        for _ in range(2):
            stale = client.get("/api/v3_0/users", headers=admin)
            assert stale.status_code == 200 and stale.json() == before
    [line] = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert "RuntimeError: handler crashed" in line and "second line" not in line
    assert client.get("/api/ops/ping").json() == {"message": "ok", "projection": "failing"}

    monkeypatch.setitem(projector_module._HANDLERS, User.UserCreated, original)
    current = client.get("/api/v3_0/users", headers=admin).json()
    assert "eve@acme.org" in {user["email"] for user in current}
    assert client.get("/api/ops/ping").json() == {"message": "ok", "projection": "ok"}


# -- item 9: instants that do not exist in UTC --------------------------------------------------


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_an_instant_out_of_range_in_utc_is_a_422(
    client: TestClient, people: dict[str, UUID], acme: UUID, moment: str
) -> None:
    admin = {"Authorization": token(client, "ann@acme.org")}
    queries = [
        (f"/api/v3_0/users/{people['ann']}/roles", "at"),
        ("/api/v3_0/roles/admin/holders", "at"),
        *(
            (f"/api/v3_0/accounts/{acme}/annotations", name)
            for name in (
                "annotations_after",
                "annotations_before",
                "beliefs_after",
                "beliefs_before",
                "annotation_starts_after",
                "annotation_ends_before",
            )
        ),
    ]
    for path, name in queries:
        response = client.get(path, headers=admin, params={name: moment})
        assert response.status_code == 422, (path, name, response.text)
        assert response.json() == {
            "message": f"invalid {name} {moment!r}: out of range once converted to UTC",
            "status": "UNPROCESSABLE_ENTITY",
        }


# -- usability: what FlexMeasures clients parse --------------------------------------------------


def test_version_headers_ping_and_error_shape_as_flexmeasures(
    client: TestClient, people: dict[str, UUID]
) -> None:
    versions = client.get("/api/")
    server_version = versions.json()["flexmeasures_version"]
    assert Version(server_version)  # PEP 440, as flexmeasures-client parses it
    ping = client.get("/api/ops/ping")
    assert ping.status_code == 200 and ping.json()["message"] == "ok"
    unauthorised = client.get("/api/v3_0/users")
    for response in (versions, ping, unauthorised):
        assert response.headers["FlexMeasures-Version"] == server_version
    assert unauthorised.headers["API-Version"] == "v3_0" and "API-Version" not in ping.headers
    admin = {"Authorization": token(client, "ann@acme.org")}
    for path, params in [
        ("/api/v3_0/users/not-a-uuid", {}),
        ("/api/v3_0/users", {"per_page": "0"}),
        (f"/api/v3_0/users/{people['ann']}/roles", {"at": "2026-01-01T00:00:00"}),
    ]:
        response = client.get(path, headers=admin, params=params)
        assert response.status_code == 422
        body = response.json()
        assert set(body) == {"message", "status"} and body["status"] == "UNPROCESSABLE_ENTITY"
    assert "naive" in body["message"]
    missing = client.post("/api/requestAuthToken", json={"email": "ann@acme.org"})
    assert missing.status_code == 422 and missing.json()["message"] == "password: is required"
    nowhere = client.get("/api/v3_0/nowhere", headers=admin)
    assert (nowhere.status_code, nowhere.json()) == (
        404,
        {"message": "Not Found", "status": "NOT_FOUND"},
    )
