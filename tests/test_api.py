"""The read API: tokens, the access matrix of FlexMeasures' policy, tenant isolation.

The tests share one world per database, built once and never changed: a test that writes
(a login, a new user, an annotation) builds a world of its own (`fresh_world`), and every test
on the shared one checks that it left the log as it found it, so no test depends on another's
order."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
from fastapi.testclient import TestClient
from itsdangerous import URLSafeTimedSerializer

from ledger import Ledger
from projections.api import create_app
from tests.conftest import ADMIN, create_pg_database

PASSWORD = "correct horse"


@dataclass
class World:
    url: str
    led: Ledger
    client: TestClient
    accounts: dict[str, UUID] = field(default_factory=dict)
    users: dict[str, UUID] = field(default_factory=dict)
    tokens: dict[str, str | None] = field(default_factory=dict)

    def token(self, email: str) -> str:
        response = self.client.post(
            "/api/requestAuthToken", json={"email": email, "password": PASSWORD}
        )
        assert response.status_code == 200, response.text
        return str(response.json()["auth_token"])

    def get(self, path: str, caller: str, **params: Any) -> Any:
        token = self.tokens[caller]
        headers = {"Authorization": token} if token else {}
        return self.client.get(path, headers=headers, params=params or None)


CALLERS = [
    "admin",
    "reader",
    "client_admin",
    "client_plain",
    "consultant",
    "seita_plain",
    "rival",
    "platform_consultant",
    "inactive",
    "no_token",
    "expired",
    "forged",
]
UNAUTHENTICATED = {"inactive", "no_token", "expired", "forged"}
# Which of the three target accounts (and their users) each caller may read ...
READS = {
    "admin": {"seita", "client", "foreign"},
    "reader": {"seita", "client", "foreign"},
    "client_admin": {"client"},
    "client_plain": {"client"},
    "consultant": {"seita", "client"},  # own account, and the client it advises
    "seita_plain": {"seita"},  # in the consultancy, but without `consultant`: not its clients
    "rival": {"foreign"},  # advises Foreign only
    "platform_consultant": set(),  # `consultant` in an account that advises no one
}
# ... and whose audit logs (account's, and its users' other than their own).
AUDITS = {
    "admin": {"seita", "client", "foreign"},
    "reader": {"seita", "client", "foreign"},
    "client_admin": {"client"},
    "client_plain": set(),
    "consultant": {"client"},
    "seita_plain": set(),
    "rival": {"foreign"},
    "platform_consultant": set(),
}
CALLER_EMAIL = {
    "admin": "admin@platform.example",
    "reader": "reader@platform.example",
    "client_admin": "boss@client.example",
    "client_plain": "plain@client.example",
    "consultant": "consultant@seita.example",
    "seita_plain": "plain@seita.example",
    "rival": "consultant@rival.example",
    "platform_consultant": "consultant@platform.example",
    "inactive": "leaver@client.example",
}


def build_world(url: str) -> World:
    led = Ledger(url)
    for role in ("admin", "admin-reader", "account-admin", "consultant"):
        led.define_role(role, actor=ADMIN)
    led.define_account_role("Consultancy", actor=ADMIN)
    world = World(url, led, TestClient(create_app(url)))
    a = world.accounts
    a["platform"] = led.create_account("Platform", actor=ADMIN)
    a["seita"] = led.create_account("Seita", actor=ADMIN, roles=["Consultancy"])
    a["rival"] = led.create_account("Rival", actor=ADMIN, roles=["Consultancy"])
    a["client"] = led.create_account("Client", actor=ADMIN, consultancy_account_id=a["seita"])
    a["foreign"] = led.create_account("Foreign", actor=ADMIN, consultancy_account_id=a["rival"])
    people = [
        ("admin", "platform", ["admin"]),
        ("reader", "platform", ["admin-reader"]),
        ("client_admin", "client", ["account-admin"]),
        ("client_plain", "client", []),
        ("consultant", "seita", ["consultant"]),
        ("seita_plain", "seita", []),
        ("rival", "rival", ["consultant"]),
        ("platform_consultant", "platform", ["consultant"]),
        ("inactive", "client", []),
    ]
    for name, account, roles in people:
        world.users[name] = led.create_user(
            CALLER_EMAIL[name], account_id=a[account], actor=ADMIN, roles=roles, password=PASSWORD
        )
    for target in ("seita", "client", "foreign"):
        world.users[f"{target}_member"] = led.create_user(
            f"member@{target}.example", account_id=a[target], actor=ADMIN
        )
    world.tokens["inactive"] = world.token(CALLER_EMAIL["inactive"])
    led.deactivate_user(world.users["inactive"], actor=ADMIN)
    world.tokens["no_token"] = None
    world.tokens["forged"] = URLSafeTimedSerializer(b"not the secret", salt="auth-token").dumps(
        {"user": str(world.users["admin"]), "credential": None}
    )
    return world


@dataclass(frozen=True)
class Template:
    """A world built once per database and closed, to copy: building one takes seconds (a
    password hash and a login per caller), copying its database a fraction of that."""

    url: str
    world: World
    pg_admin_url: str | None


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def template(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Template]:
    if request.param == "sqlite":
        url, drop, admin = f"sqlite:///{tmp_path_factory.mktemp('api') / 'ledger.db'}", None, None
    else:
        admin = request.getfixturevalue("postgres_server")
        url, drop = create_pg_database(admin)
    try:
        world = build_world(url)
        for caller in CALLER_EMAIL:  # every login now, so the copies start with every token
            if caller not in world.tokens:
                world.tokens[caller] = world.token(CALLER_EMAIL[caller])
        world.tokens["expired"] = expired_token(world)
        close_world(world)
        yield Template(url, world, admin)
    finally:
        if drop:
            drop()


def close_world(world: World) -> None:
    world.client.app.state.services.close()  # type: ignore[attr-defined]
    world.led.close()


@contextmanager
def copied_world(template: Template, folder: Path) -> Iterator[World]:
    """A world of its own: the template's database copied, with its ids and tokens."""
    drop: Callable[[], None] | None = None
    if template.pg_admin_url is None:
        url = f"sqlite:///{folder / 'ledger.db'}"
        with (
            closing(sqlite3.connect(template.url.removeprefix("sqlite:///"))) as source,
            closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as target,
        ):
            source.backup(target)
    else:
        url, drop = copy_pg_database(template.pg_admin_url, template.url)
    original = template.world
    world = World(
        url,
        Ledger(url),
        TestClient(create_app(url)),
        dict(original.accounts),
        dict(original.users),
        dict(original.tokens),
    )
    try:
        yield world
    finally:
        close_world(world)
        if drop:
            drop()


def copy_pg_database(admin_url: str, template_url: str) -> tuple[str, Callable[[], None]]:
    url, drop = create_pg_database(admin_url)
    new, old = url.rsplit("/", 1)[1], template_url.rsplit("/", 1)[1]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{new}"')
        conn.execute(f'CREATE DATABASE "{new}" TEMPLATE "{old}"')
    return url, drop


@pytest.fixture(scope="module")
def shared_world(template: Template, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with copied_world(template, tmp_path_factory.mktemp("shared")) as world:
        yield world


@pytest.fixture
def world(shared_world: World) -> Iterator[World]:
    """The shared world, for a test that only reads: it must leave the log as it found it."""
    before = shared_world.led.recorder.max_notification_id()
    yield shared_world
    after = shared_world.led.recorder.max_notification_id()
    assert after == before, "this test wrote to the shared world: give it `fresh_world`"


@pytest.fixture
def fresh_world(template: Template, tmp_path: Path) -> Iterator[World]:
    """A world of the test's own, for a test that writes (a login counts)."""
    with copied_world(template, tmp_path) as world:
        yield world


def expired_token(world: World) -> str:
    real = time.time
    try:
        time.time = lambda: real() - 7 * 3600  # type: ignore[assignment]
        return world.token(CALLER_EMAIL["admin"])
    finally:
        time.time = real  # type: ignore[assignment]


def expected(caller: str, target: str, audit: bool = False) -> int:
    if caller in UNAUTHENTICATED:
        return 401
    allowed = (AUDITS if audit else READS)[caller]
    return 200 if target in allowed else 403


def test_the_access_matrix(world: World) -> None:
    wrong = []
    for caller in CALLERS:
        for target in ("seita", "client", "foreign"):
            account, member = world.accounts[target], world.users[f"{target}_member"]
            cells = {
                f"/api/v3_0/accounts/{account}": expected(caller, target),
                f"/api/v3_0/accounts/{account}/annotations": expected(caller, target),
                f"/api/v3_0/accounts/{account}/auditlog": expected(caller, target, audit=True),
                f"/api/v3_0/users/{member}": expected(caller, target),
                f"/api/v3_0/users/{member}/roles": expected(caller, target),
                f"/api/v3_0/users/{member}/auditlog": expected(caller, target, audit=True),
                f"/api/v3_0/users?account_id={account}": expected(caller, target),
            }
            for path, status in cells.items():
                got = world.get(path, caller).status_code
                if got != status:
                    wrong.append(f"{caller} GET {path} ({target}): {got}, expected {status}")
        if caller in world.users:  # every caller reads their own user and audit log
            me = world.users[caller]
            own = 401 if caller in UNAUTHENTICATED else 200
            for path in (
                f"/api/v3_0/users/{me}",
                f"/api/v3_0/users/{me}/roles",
                f"/api/v3_0/users/{me}/auditlog",
            ):
                got = world.get(path, caller).status_code
                if got != own:
                    wrong.append(f"{caller} GET {path} (own user): {got}, expected {own}")
    assert not wrong, "\n".join(wrong)


def test_callers_read_their_own_user_and_audit_log(world: World) -> None:
    """Even a plain member, who reads no one else's audit log (not even in their account)."""
    for caller in CALLERS:
        if caller in UNAUTHENTICATED:
            continue
        me = world.users[caller]
        user = world.get(f"/api/v3_0/users/{me}", caller)
        assert user.status_code == 200, (caller, user.text)
        assert (user.json()["id"], user.json()["email"]) == (str(me), CALLER_EMAIL[caller])
        log = world.get(f"/api/v3_0/users/{me}/auditlog", caller)
        assert log.status_code == 200, (caller, log.text)
        assert log.json()[0]["event_type"] == "UserCreated"
        roles = world.get(f"/api/v3_0/users/{me}/roles", caller)
        assert roles.status_code == 200, (caller, roles.text)
    for plain, neighbour in (("client_plain", "client_admin"), ("seita_plain", "consultant")):
        other = world.users[neighbour]
        assert world.get(f"/api/v3_0/users/{other}", plain).status_code == 200
        assert world.get(f"/api/v3_0/users/{other}/auditlog", plain).status_code == 403


def test_list_routes_hold_exactly_what_the_caller_may_read(world: World) -> None:
    for caller in CALLERS:
        response = world.get("/api/v3_0/accounts", caller)
        if caller in UNAUTHENTICATED:
            assert response.status_code == 401
            continue
        own = {
            "admin": "platform",
            "reader": "platform",
            "client_admin": "client",
            "client_plain": "client",
            "consultant": "seita",
            "seita_plain": "seita",
            "rival": "rival",
            "platform_consultant": "platform",
        }[caller]
        visible = READS[caller] | {own}
        if caller in ("admin", "reader"):
            visible = set(world.accounts)
        assert {UUID(a["id"]) for a in response.json()} == {world.accounts[n] for n in visible}
        users = world.get("/api/v3_0/users", caller, include_inactive=True).json()
        expected_users = {
            user_id for name, user_id in world.users.items() if _account_of(name) in visible
        }
        assert {UUID(u["id"]) for u in users} == expected_users, caller


def _account_of(user: str) -> str:
    return {
        "admin": "platform",
        "reader": "platform",
        "client_admin": "client",
        "client_plain": "client",
        "consultant": "seita",
        "seita_plain": "seita",
        "rival": "rival",
        "platform_consultant": "platform",
        "inactive": "client",
    }.get(user) or user.removesuffix("_member")


def test_tokens(fresh_world: World) -> None:
    world = fresh_world
    login = {"email": CALLER_EMAIL["client_plain"], "password": "wrong"}
    wrong = world.client.post("/api/requestAuthToken", json=login)
    unknown = world.client.post(
        "/api/requestAuthToken", json={"email": "nobody@x.example", "password": PASSWORD}
    )
    inactive = world.client.post(
        "/api/requestAuthToken", json={"email": CALLER_EMAIL["inactive"], "password": PASSWORD}
    )
    assert wrong.status_code == unknown.status_code == inactive.status_code == 401
    assert wrong.json() == unknown.json() == inactive.json()  # no user enumeration
    token = world.token(CALLER_EMAIL["client_plain"].upper())
    for header in (token, f"Bearer {token}"):
        me = world.client.get(
            f"/api/v3_0/users/{world.users['client_plain']}", headers={"Authorization": header}
        )
        assert me.status_code == 200
    assert (
        world.get("/api/v3_0/accounts", "expired")
        .json()["message"]
        .startswith("the token has expired")
    )


def test_a_token_stops_working_at_once(fresh_world: World) -> None:
    world = fresh_world
    led = world.led
    email = "temp@client.example"
    user = led.create_user(
        email, account_id=world.accounts["client"], actor=ADMIN, password=PASSWORD
    )
    path = f"/api/v3_0/users/{user}"

    def status(token: str) -> int:
        return int(world.client.get(path, headers={"Authorization": token}).status_code)

    token = world.token(email)
    assert status(token) == 200
    led.set_password(user, "a new one", actor=ADMIN)
    assert status(token) == 401
    led.set_password(user, PASSWORD, actor=ADMIN)
    token = world.token(email)
    led.deactivate_user(user, actor=ADMIN)
    assert status(token) == 401
    led.reactivate_user(user, actor=ADMIN)
    token = world.token(email)
    led.erase_user(user, actor=ADMIN, reason="GDPR")
    assert status(token) == 401


def test_a_grant_past_its_until_stops_granting_reads_before_its_expiry_is_recorded(
    fresh_world: World,
) -> None:
    world = fresh_world
    email = "auditor@client.example"
    user = world.led.create_user(
        email, account_id=world.accounts["client"], actor=ADMIN, password=PASSWORD
    )
    headers = {"Authorization": world.token(email)}
    # seconds enough for a grant and a request on a loaded machine: the window must not close
    # before the first request is answered
    ends = datetime.now(UTC) + timedelta(seconds=4)
    world.led.grant_role(user, "admin-reader", actor=ADMIN, until=ends)
    foreign = f"/api/v3_0/accounts/{world.accounts['foreign']}"
    assert world.client.get(foreign, headers=headers).status_code == 200
    time.sleep(max(0.0, (ends - datetime.now(UTC)).total_seconds()) + 0.05)
    assert world.client.get(foreign, headers=headers).status_code == 403
    feed = world.client.get("/api/v3_0/auditlog/changes", headers=headers).json()["changes"]
    assert feed and all(c.get("aggregate_type") != "Role" for c in feed)
    assert world.client.get(f"/api/v3_0/accounts/{world.accounts['client']}", headers=headers)
    assert world.led.expire_grants(actor=ADMIN) == 1  # nothing had recorded the expiry before


def test_routes_and_fields(world: World) -> None:
    versions = world.client.get("/api/").json()
    assert versions["versions"] == ["v3_0"] and "flexmeasures_version" in versions
    me = world.get(f"/api/v3_0/users/{world.users['client_admin']}", "admin").json()
    assert set(me) >= {
        "id",
        "email",
        "username",
        "account_id",
        "active",
        "timezone",
        "flexmeasures_roles",
        "last_login_at",
        "last_seen_at",
    }
    assert me["flexmeasures_roles"] == ["account-admin"]
    assert datetime.fromisoformat(me["last_login_at"]).tzinfo is not None  # logged in on token
    account = world.get(f"/api/v3_0/accounts/{world.accounts['client']}", "admin").json()
    assert account == {
        "id": str(world.accounts["client"]),
        "name": "Client",
        "primary_color": None,
        "secondary_color": None,
        "logo_url": None,
        "account_roles": [],
        "consultancy_account_id": str(world.accounts["seita"]),
        "account_role_ends": {},
    }
    log = world.get(f"/api/v3_0/users/{world.users['client_admin']}/auditlog", "admin").json()
    first = log[0]
    assert set(first) >= {"event", "event_datetime", "active_user_name", "active_user_id"}
    assert (first["event_type"], first["active_user_name"]) == ("UserCreated", ADMIN)
    everything = world.get("/api/v3_0/users", "admin").json()
    matching = world.get("/api/v3_0/users", "admin", filter="CLIENT").json()
    assert len(matching) >= 3 and all("client" in u["email"] for u in matching)
    page = world.get("/api/v3_0/users", "admin", page=2, per_page=2, filter="client").json()
    assert (page["num-records"], page["filtered-records"]) == (len(everything), len(matching))
    assert page["data"] == matching[2:4]
    holders = world.get("/api/v3_0/roles/consultant/holders", "consultant").json()
    assert {u["email"] for u in holders} == {CALLER_EMAIL["consultant"]}  # not the rival's
    everyone = world.get("/api/v3_0/roles/consultant/holders", "admin").json()
    assert len(everyone) == 3
    past = world.get(
        "/api/v3_0/roles/consultant/holders",
        "admin",
        at=(datetime.now(UTC) - timedelta(days=1)).isoformat(),
    ).json()
    assert past == []
    assert world.get("/api/v3_0/roles/nosuch/holders", "admin").status_code == 404
    assert world.get(f"/api/v3_0/users/{UUID(int=7)}", "admin").status_code == 404
    assert world.get("/api/v3_0/users/not-a-uuid", "admin").status_code == 422
    naive = world.get(
        f"/api/v3_0/users/{world.users['admin']}/roles", "admin", at="2026-01-01T00:00:00"
    )
    assert naive.status_code == 422 and "naive" in naive.json()["message"]


def test_annotations_route(fresh_world: World) -> None:
    world = fresh_world
    led, client = world.led, world.accounts["client"]
    start = datetime(2026, 12, 24, tzinfo=UTC)
    led.add_annotation(
        client,
        content="Christmas",
        start=start,
        end=start + timedelta(days=3),
        source="calendar",
        type="holiday",
        actor=ADMIN,
    )
    led.add_annotation(
        client,
        content="Outage",
        start=start - timedelta(days=30),
        end=start - timedelta(days=29),
        source="monitoring",
        type="alert",
        actor=ADMIN,
    )
    found = world.get(
        f"/api/v3_0/accounts/{client}/annotations",
        "client_plain",
        annotations_after=(start - timedelta(days=1)).isoformat(),
    ).json()
    assert [a["content"] for a in found] == ["Christmas"]
    by_source = world.get(
        f"/api/v3_0/accounts/{client}/annotations", "consultant", source=["monitoring", "other"]
    ).json()
    assert [a["content"] for a in by_source] == ["Outage"]
