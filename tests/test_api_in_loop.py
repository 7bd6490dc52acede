"""Every read route checks the token and reads in the event loop where the database's reads
never wait (SQLite in WAL mode) and in one worker thread elsewhere (PostgreSQL): both ways
must answer alike, byte for byte, whatever the token, the parameters and the state of the read
models; a bad token answers 401 before a bad parameter's 422; and the token check, which may
run in the loop, only reads."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import anyio.to_thread
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

import projections.api.workers as workers
import projections.projector as projector_module
from ledger import Ledger
from ledger.domain import User
from tests.conftest import ADMIN
from tests.helpers import api_client

PASSWORD = "correct horse"


@pytest.fixture
def clients(url: str, led: Ledger, acme: UUID) -> Iterator[tuple[TestClient, TestClient]]:
    """Two workers on one database: the first as served, the second told that its reads may
    wait (each request's reads then go to a worker thread)."""
    with api_client(url, "192.0.2.7") as served, api_client(url, "192.0.2.8") as threaded:
        for client in (served, threaded):
            assert client.app.state.services.ledger is not None  # type: ignore[attr-defined]
        threaded.app.state.services.reads_in_loop = False  # type: ignore[attr-defined]
        yield served, threaded


def token(client: TestClient, email: str) -> str:
    response = client.post("/api/requestAuthToken", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return str(response.json()["auth_token"])


def answers(clients: tuple[TestClient, TestClient], path: str, token: str | None) -> None:
    """Both workers answer `path` alike (status, headers FlexMeasures clients read, body)."""
    headers = {} if token is None else {"Authorization": token}
    served, threaded = (client.get(path, headers=headers) for client in clients)
    assert served.status_code == threaded.status_code, (path, served.text, threaded.text)
    assert served.content == threaded.content, path
    for name in ("content-type", "api-version", "flexmeasures-version"):
        assert served.headers.get(name) == threaded.headers.get(name), name


def test_reads_run_in_the_loop_only_where_they_never_wait(
    url: str, clients: tuple[TestClient, TestClient]
) -> None:
    served = clients[0].app.state.services  # type: ignore[attr-defined]
    assert served.reads_in_loop is url.startswith("sqlite")


def test_the_user_route_answers_alike_in_the_loop_and_in_a_thread(
    led: Ledger, acme: UUID, clients: tuple[TestClient, TestClient]
) -> None:
    globex = led.create_account("Globex", actor=ADMIN)
    ann = led.create_user(
        "ann@acme.org", account_id=acme, actor=ADMIN, roles=["account-admin"], password=PASSWORD
    )
    bob = led.create_user("bob@acme.org", account_id=acme, actor=ADMIN, password=PASSWORD)
    carl = led.create_user("carl@globex.org", account_id=globex, actor=ADMIN)
    ann_token = token(clients[0], "ann@acme.org")
    bob_token = token(clients[1], "bob@acme.org")
    paths = [f"/api/v3_0/users/{user}" for user in (ann, bob, carl, uuid4())]
    paths += ["/api/v3_0/users/12345", "/api/v3_0/users/not-an-id", f"/api/v3_0/users/{ann}?x=1"]

    def all_alike() -> None:
        for path in paths:
            for each in (ann_token, bob_token, "Bearer " + ann_token, "garbage", "", None):
                answers(clients, path, each)

    all_alike()
    # each change recorded by another process: the read models lag until caught up
    led.grant_role(bob, "admin-reader", actor=ADMIN)
    all_alike()
    led.update_user(carl, username="carl-g", actor=ADMIN)
    all_alike()
    led.deactivate_user(bob, actor=ADMIN)
    all_alike()
    led.erase_user(ann, actor=ADMIN, reason="asked to")
    all_alike()


def test_every_read_route_answers_alike_in_the_loop_and_in_a_thread(
    led: Ledger, acme: UUID, clients: tuple[TestClient, TestClient]
) -> None:
    globex = led.create_account("Globex", actor=ADMIN)
    ann = led.create_user(
        "ann@acme.org", account_id=acme, actor=ADMIN, roles=["account-admin"], password=PASSWORD
    )
    bob = led.create_user("bob@acme.org", account_id=acme, actor=ADMIN, password=PASSWORD)
    led.create_user(
        "rex@acme.org", account_id=acme, actor=ADMIN, roles=["admin"], password=PASSWORD
    )
    carl = led.create_user("carl@globex.org", account_id=globex, actor=ADMIN)
    start = datetime(2026, 12, 24, tzinfo=UTC)
    led.add_annotation(
        acme, content="Christmas", start=start, end=start + timedelta(days=3),
        source="calendar", actor=ADMIN,
    )  # fmt: skip
    led.start_review(
        "q1", scope={"accounts": ["Acme"]}, reviewer="rex@acme.org",
        due=datetime.now(UTC) + timedelta(days=30), actor=ADMIN,
    )  # fmt: skip
    tokens = [token(clients[0], f"{name}@acme.org") for name in ("ann", "bob", "rex")]
    paths = ["/api/v3_0/users", "/api/v3_0/users?include_inactive=true&per-page=2&page=1"]
    paths += [f"/api/v3_0/users?account_id={acme}", f"/api/v3_0/users?account_id={globex}"]
    for user in (ann, bob, carl, uuid4(), 12345):
        paths += [f"/api/v3_0/users/{user}{end}" for end in ("", "/auditlog", "/roles")]
        paths += [f"/api/v3_0/users/{user}/reviews"]
    paths += [f"/api/v3_0/users/{ann}/roles?at=2020-01-01T00:00:00Z"]
    paths += ["/api/v3_0/accounts", "/api/v3_0/accounts?per-page=1&page=2"]
    for account in (acme, globex, uuid4(), 77):
        paths += [f"/api/v3_0/accounts/{account}{end}" for end in ("", "/auditlog")]
        paths += [f"/api/v3_0/accounts/{account}/annotations"]
    paths += [f"/api/v3_0/accounts/{acme}/annotations?annotations_after=2026-12-25T00:00:00Z"]
    paths += ["/api/v3_0/roles/admin/holders", "/api/v3_0/roles/nothing/holders"]
    paths += ["/api/v3_0/reviews", "/api/v3_0/reviews/q1", "/api/v3_0/reviews/q2"]

    def all_alike() -> None:
        for path in paths:
            for each in (*tokens, "garbage", None):
                answers(clients, path, each)

    all_alike()
    # each change recorded by another process: the read models lag until caught up
    led.grant_role(bob, "admin-reader", actor=ADMIN)
    all_alike()
    led.move_user(carl, acme, actor=ADMIN)
    all_alike()
    led.deactivate_user(bob, actor=ADMIN)
    all_alike()
    led.erase_user(ann, actor=ADMIN, reason="asked to")
    all_alike()


def test_a_read_takes_no_worker_thread_where_reads_never_wait_and_one_elsewhere(
    url: str,
    led: Ledger,
    acme: UUID,
    clients: tuple[TestClient, TestClient],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Counted at anyio, where FastAPI's and Starlette's hops to the thread pool all go, and at
    the read API's own pool (`projections.api.workers`), where the routes' hops go: a
    warm worker's read takes none in the loop, and one (the token check with the route's
    reads) elsewhere; a FlexMeasures id, looked up through the ledger's pool, takes one. A
    list's route, whose answer grows with the data, takes two or more everywhere (the route, its
    answer's validation): it never holds up the loop."""
    ann = led.create_user(
        "ann@acme.org", account_id=acme, actor=ADMIN, roles=["admin"], password=PASSWORD
    )
    good = token(clients[0], "ann@acme.org")
    hops: list[object] = []
    run_sync = anyio.to_thread.run_sync

    async def counted(function: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(function)
        return await run_sync(function, *args, **kwargs)

    submit = workers._pool.submit

    def counted_submit(function: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(function)
        return submit(function, *args, **kwargs)

    paths = [f"/api/v3_0/users/{ann}", f"/api/v3_0/accounts/{acme}"]
    paths += [f"/api/v3_0/users/{ann}/roles", "/api/ops/ping"]
    lists = ["/api/v3_0/users", "/api/v3_0/roles/admin/holders", f"/api/v3_0/users/{ann}/auditlog"]
    for client, in_loop in zip(clients, (url.startswith("sqlite"), False), strict=True):
        for path in [*paths, "/api/v3_0/users/12345"]:
            assert client.get(path, headers={"Authorization": good}).status_code in (200, 404)
        monkeypatch.setattr(anyio.to_thread, "run_sync", counted)
        monkeypatch.setattr(workers._pool, "submit", counted_submit)
        for path in paths:
            hops.clear()
            assert client.get(path, headers={"Authorization": good}).status_code == 200
            assert len(hops) == (0 if in_loop or path == "/api/ops/ping" else 1), path
        for path in lists:
            hops.clear()
            assert client.get(path, headers={"Authorization": good}).status_code == 200
            assert len(hops) >= 2, path  # the audit log's parameters take one more
        hops.clear()
        assert (
            client.get("/api/v3_0/users/12345", headers={"Authorization": good}).status_code == 404
        )
        assert len(hops) == 1
        monkeypatch.undo()


def test_a_callers_move_counts_at_once_while_the_read_models_cannot_catch_up(
    led: Ledger,
    acme: UUID,
    clients: tuple[TestClient, TestClient],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The caller is taken as recorded, as their roles are: moved to another account, they
    no longer read their old account's users, though the read models still hold them in it."""
    globex = led.create_account("Globex", actor=ADMIN)
    bob = led.create_user("bob@acme.org", account_id=acme, actor=ADMIN, password=PASSWORD)
    carl = led.create_user("carl@acme.org", account_id=acme, actor=ADMIN)
    bob_token = {"Authorization": token(clients[0], "bob@acme.org")}
    for client in clients:
        assert client.get(f"/api/v3_0/users/{carl}", headers=bob_token).status_code == 200

    def failing(*args: object) -> None:
        raise RuntimeError("handler crashed")

    monkeypatch.setitem(projector_module._HANDLERS, User.UserMoved, failing)
    led.move_user(bob, globex, actor=ADMIN)
    for client in clients:
        assert client.get(f"/api/v3_0/users/{carl}", headers=bob_token).status_code == 403
        own = client.get(f"/api/v3_0/users/{bob}", headers=bob_token)
        assert own.status_code == 200 and own.json()["account_id"] == str(acme)  # as projected
        assert client.get("/api/ops/ping").json()["projection"] == "failing"
    answers(clients, f"/api/v3_0/users/{carl}", bob_token["Authorization"])


def test_a_bad_token_answers_401_before_a_bad_parameter_answers_422(
    led: Ledger, acme: UUID, clients: tuple[TestClient, TestClient]
) -> None:
    ann = led.create_user(
        "ann@acme.org", account_id=acme, actor=ADMIN, roles=["admin"], password=PASSWORD
    )
    good = token(clients[0], "ann@acme.org")
    bad_parameters = [
        "/api/v3_0/users/not-an-id",
        "/api/v3_0/users?page=0",
        f"/api/v3_0/users/{ann}/roles?at=yesterday",
        f"/api/v3_0/users/{ann}/auditlog?sort-dir=up",
        f"/api/v3_0/accounts/{acme}/annotations?beliefs_after=soon",
        "/api/v3_0/reviews?at=never",
    ]
    for path in bad_parameters:
        for client in clients:
            for each in ("garbage", None):
                headers = {} if each is None else {"Authorization": each}
                assert client.get(path, headers=headers).status_code == 401, path
            assert client.get(path, headers={"Authorization": good}).status_code == 422, path
            answers(clients, path, good)


def test_a_deleted_signing_secret_refuses_every_token_and_checking_makes_none(
    url: str, led: Ledger, acme: UUID, clients: tuple[TestClient, TestClient]
) -> None:
    """The product never deletes it; if it is gone, no token was signed with a secret made
    later: every token is refused (401), in warm workers and cold ones, and checking a token
    writes nothing (it may run in the event loop); the next login makes a new secret."""
    ann = led.create_user("ann@acme.org", account_id=acme, actor=ADMIN, password=PASSWORD)
    path = f"/api/v3_0/users/{ann}"
    old = token(clients[0], "ann@acme.org")
    for client in clients:
        assert client.get(path, headers={"Authorization": old}).status_code == 200
    engine = create_engine(url)
    secret_rows = text("SELECT count(*) FROM ledger_secrets WHERE name = 'api-token'")
    try:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM ledger_secrets WHERE name = 'api-token'"))
        with api_client(url, "192.0.2.9") as cold:
            for client in (*clients, cold):
                refused = client.get(path, headers={"Authorization": old})
                assert refused.status_code == 401
                assert refused.json()["message"] == "the token is not valid"
        with engine.connect() as conn:
            assert conn.execute(secret_rows).scalar() == 0
        new = token(clients[1], "ann@acme.org")
        with engine.connect() as conn:
            assert conn.execute(secret_rows).scalar() == 1
    finally:
        engine.dispose()
    for client in clients:
        assert client.get(path, headers={"Authorization": new}).status_code == 200
        assert client.get(path, headers={"Authorization": old}).status_code == 401


def test_tokens_keep_their_format_and_the_signing_key_is_derived_once() -> None:
    from itsdangerous import TimestampSigner, URLSafeTimedSerializer

    from projections.api.auth import _OnceDerivedSigner, _TokenSerializer

    secret = b"s" * 32
    ours, plain = _TokenSerializer(secret), URLSafeTimedSerializer(secret, salt="auth-token")
    claims = {"user": "x", "v": 1}
    assert ours.loads(plain.dumps(claims), max_age=60) == claims
    assert plain.loads(ours.dumps(claims), max_age=60) == claims
    assert ours.dumps(claims).split(".")[0] == plain.dumps(claims).split(".")[0]

    derivations = 0
    derive = TimestampSigner.derive_key

    def counted(self: TimestampSigner, secret_key: str | bytes | None = None) -> bytes:
        nonlocal derivations
        derivations += 1
        return derive(self, secret_key)

    TimestampSigner.derive_key = counted  # type: ignore[method-assign]
    try:
        fresh = _TokenSerializer(secret)
        token = fresh.dumps(claims)
        for _ in range(20):
            assert fresh.loads(token, max_age=60) == claims
    finally:
        TimestampSigner.derive_key = derive  # type: ignore[method-assign]
    assert type(fresh.make_signer()) is _OnceDerivedSigner
    assert derivations == 1  # itsdangerous alone: 21
    with pytest.raises(Exception, match="Signature"):
        _TokenSerializer(b"t" * 32).loads(token, max_age=60)
