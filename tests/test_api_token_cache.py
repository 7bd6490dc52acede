"""The token check keeps, per process, the users it rebuilt from their events and the signing
secret, and confirms them against the database on every request. Each change that ends or
narrows a token's access must take effect on the very next request of every worker whose
cache is warm: here two apps (two workers) on one database, both warmed, the change recorded
by a third party (another `Ledger`), then a request to each."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from uuid import UUID

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from ledger import Ledger
from tests.conftest import ADMIN
from tests.helpers import api_client

PASSWORD = "correct horse"


@dataclass
class World:
    led: Ledger
    acme: UUID
    globex: UUID
    ann: UUID  # admin of acme
    bob: UUID  # no role, in acme
    workers: list[TestClient]

    def token(self, email: str, worker: int = 0) -> str:
        response = self.workers[worker].post(
            "/api/requestAuthToken", json={"email": email, "password": PASSWORD}
        )
        assert response.status_code == 200, response.text
        return str(response.json()["auth_token"])

    def statuses(self, token: str, path: str) -> list[int]:
        """The status each worker answers `path` with."""
        return [w.get(path, headers={"Authorization": token}).status_code for w in self.workers]

    def warm(self, token: str, user: UUID, path: str) -> None:
        """Every worker answers `path` and holds `user` in its token cache."""
        assert self.statuses(token, path) == [200, 200]
        for worker in self.workers:
            services = worker.app.state.services  # type: ignore[attr-defined]
            assert user in services.tokens._checked  # the cache this file is about is warm


@pytest.fixture
def world(url: str, led: Ledger, acme: UUID) -> Iterator[World]:
    globex = led.create_account("Globex", actor=ADMIN)
    ann = led.create_user(
        "ann@acme.org", account_id=acme, actor=ADMIN, roles=["admin"], password=PASSWORD
    )
    bob = led.create_user("bob@acme.org", account_id=acme, actor=ADMIN, password=PASSWORD)
    with api_client(url, "192.0.2.7") as first, api_client(url, "192.0.2.8") as second:
        yield World(led, acme, globex, ann, bob, [first, second])


def me_path(user: UUID) -> str:
    return f"/api/v3_0/users/{user}"


def deactivated_then_reactivated(w: World) -> None:
    w.led.deactivate_user(w.ann, actor=ADMIN)
    w.led.reactivate_user(w.ann, actor=ADMIN)


CHANGES: dict[str, Callable[[World], object]] = {
    "deactivated": lambda w: w.led.deactivate_user(w.ann, actor=ADMIN),
    "deactivated then reactivated": deactivated_then_reactivated,
    "password changed": lambda w: w.led.set_password(w.ann, "battery staple", actor=ADMIN),
    "erased": lambda w: w.led.erase_user(w.ann, actor=ADMIN, reason="asked to"),
    "account closed": lambda w: w.led.close_account(w.acme, actor=ADMIN),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_token_stops_working_at_once_in_every_warm_worker(world: World, change: str) -> None:
    token = world.token("ann@acme.org")
    world.warm(token, world.ann, me_path(world.ann))
    CHANGES[change](world)
    assert world.statuses(token, me_path(world.ann)) == [401, 401]


def test_a_revoked_role_stops_granting_at_once_in_every_warm_worker(world: World) -> None:
    token = world.token("ann@acme.org")
    other_tenant = f"/api/v3_0/accounts/{world.globex}"
    world.warm(token, world.ann, other_tenant)
    world.led.revoke_role(world.ann, "admin", actor=ADMIN)
    assert world.statuses(token, other_tenant) == [403, 403]
    assert world.statuses(token, me_path(world.ann)) == [200, 200]  # still a user of acme


def test_a_moved_user_is_checked_against_their_new_account_at_once(world: World) -> None:
    token = world.token("bob@acme.org")
    world.warm(token, world.bob, me_path(world.bob))
    world.led.move_user(world.bob, world.globex, actor=ADMIN)
    assert world.statuses(token, me_path(world.bob)) == [200, 200]
    # a cache still holding bob in acme would find his account open
    world.led.close_account(world.globex, actor=ADMIN)
    assert world.statuses(token, me_path(world.bob)) == [401, 401]


def test_a_replaced_signing_secret_takes_effect_at_once_in_every_warm_worker(
    url: str, world: World
) -> None:
    """The product never replaces it; if it is replaced in the database, the stored one
    decides from the next request on, as when it was read on every request."""
    old = world.token("ann@acme.org")
    world.warm(old, world.ann, me_path(world.ann))
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE ledger_secrets SET value = :value WHERE name = 'api-token'"),
                {"value": secrets.token_hex(32)},
            )
    finally:
        engine.dispose()
    assert world.statuses(old, me_path(world.ann)) == [401, 401]
    new = world.token("ann@acme.org", worker=0)  # signed with the stored secret
    assert world.statuses(new, me_path(world.ann)) == [200, 200]


def test_a_warm_cache_answers_as_a_cold_one(url: str, world: World) -> None:
    """Many requests, a change between each, and a fresh worker (cold cache) beside the two
    warm ones: all three answer alike every time."""
    token = world.token("ann@acme.org")
    bob_token = world.token("bob@acme.org")
    steps: list[Callable[[], object]] = [
        lambda: world.led.grant_role(world.bob, "admin-reader", actor=ADMIN),
        lambda: world.led.revoke_role(world.bob, "admin-reader", actor=ADMIN),
        lambda: world.led.update_user(world.ann, username="ann", actor=ADMIN),
        lambda: world.led.deactivate_user(world.bob, actor=ADMIN),
        lambda: world.led.reactivate_user(world.bob, actor=ADMIN),
        lambda: world.led.set_password(world.ann, "other", actor=ADMIN),
    ]
    paths = [me_path(world.ann), me_path(world.bob), f"/api/v3_0/accounts/{world.globex}"]
    for step in [lambda: None, *steps]:
        step()
        with api_client(url, "192.0.2.9") as cold:
            for each in (token, bob_token):
                for path in paths:
                    answers = world.statuses(each, path)
                    expected = cold.get(path, headers={"Authorization": each}).status_code
                    assert answers == [expected, expected], (path, answers, expected)
