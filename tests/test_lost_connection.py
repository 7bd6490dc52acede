"""PostgreSQL: a save whose connection drops. Dropped after the server committed it, before the
ledger read the answer, the save is sent again and clashes with its own events: it must still
count as recorded, once. Dropped before the COMMIT reached the server, the server rolls it back
and the save sent again must record it, once. A proxy between the ledger and the server drops
the connection at either moment (no mock: the server really commits, or really rolls back)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Literal
from uuid import UUID

import pytest
from sqlalchemy.engine import make_url

from ledger import Ledger
from ledger.audit import Audit
from projections import ReadModel
from tests.conftest import ADMIN, create_pg_database
from tests.helpers import event_names

When = Literal["before", "after"]

SSL_OR_GSS_REQUEST = (80877103, 80877104)  # the untyped requests a client may send first
COMMITTED = b"C\x00\x00\x00\x0bCOMMIT\x00"  # the server's CommandComplete of a COMMIT


class DroppingProxy:
    """A TCP proxy to PostgreSQL. Armed, it drops the next connection whose client sends a
    COMMIT: "before" in place of passing the COMMIT on; "after" once the server answers that
    it committed, the answer not passed on. Both sockets are closed, as a network failure
    would leave them. Then it runs `meanwhile`, if given, before it passes anything on again."""

    def __init__(self, port: int) -> None:
        self.target = ("127.0.0.1", port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.armed: When | None = None
        self.meanwhile: Callable[[], object] | None = None
        self.passing = threading.Event()
        self.passing.set()
        self.dropped = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self, when: When, meanwhile: Callable[[], object] | None = None) -> None:
        self.armed, self.meanwhile = when, meanwhile

    def take_arm(self) -> When | None:
        with self.lock:
            when, self.armed = self.armed, None
            return when

    def drop(self, link: _Link) -> None:
        self.passing.clear()  # before the client learns of the drop and sends anything again
        link.close()
        self.dropped += 1
        if self.meanwhile is not None:
            self.meanwhile()
        self.passing.set()

    def close(self) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed
                return
            link = _Link(self, client, socket.create_connection(self.target))
            threading.Thread(target=link.client_to_server, daemon=True).start()
            threading.Thread(target=link.server_to_client, daemon=True).start()


class _Link:
    """One client's connection through the proxy."""

    def __init__(self, proxy: DroppingProxy, client: socket.socket, server: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.server = server
        self.committing = False  # a COMMIT went through armed "after": drop at its answer

    def client_to_server(self) -> None:
        """Pass the client's messages on, one whole message at a time."""
        pending, startup = b"", True
        while chunk := _received(self.client):
            pending += chunk
            while (message := _first_message(pending, startup)) is not None:
                pending = pending[len(message) :]
                if startup and len(message) == 8 and _int(message[4:8]) in SSL_OR_GSS_REQUEST:
                    self.client.sendall(b"N")  # no encryption: the messages stay readable
                    continue
                startup = False
                self.proxy.passing.wait()
                if message[:1] in (b"P", b"Q") and b"COMMIT\x00" in message:
                    when = self.proxy.take_arm()
                    if when == "before":
                        self.proxy.drop(self)
                        return
                    self.committing = when == "after"
                with contextlib.suppress(OSError):
                    self.server.sendall(message)
        self.close()

    def server_to_client(self) -> None:
        answer = b""
        while chunk := _received(self.server):
            if self.committing:
                answer += chunk
                if COMMITTED in answer:
                    self.proxy.drop(self)
                    return
                continue
            with contextlib.suppress(OSError):
                self.client.sendall(chunk)
        self.close()

    def close(self) -> None:
        for end in (self.client, self.server):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()


def _received(end: socket.socket) -> bytes:
    try:
        return end.recv(65536)
    except OSError:
        return b""


def _int(four: bytes) -> int:
    return int.from_bytes(four, "big")


def _first_message(pending: bytes, startup: bool) -> bytes | None:
    """The first whole message in `pending` (a startup message has no type byte)."""
    header = 4 if startup else 5
    if len(pending) < header:
        return None
    size = _int(pending[header - 4 : header]) + header - 4
    return pending[:size] if len(pending) >= size else None


@pytest.fixture
def pg_url(postgres_server: str) -> Iterator[str]:
    url, drop = create_pg_database(postgres_server)
    try:
        yield url
    finally:
        drop()


@pytest.fixture
def proxy(pg_url: str) -> Iterator[DroppingProxy]:
    proxy = DroppingProxy(make_url(pg_url).port or 5432)
    try:
        yield proxy
    finally:
        proxy.close()


@pytest.fixture
def led(pg_url: str, proxy: DroppingProxy) -> Iterator[Ledger]:
    through_proxy = make_url(pg_url).set(port=proxy.port)
    ledger = Ledger(through_proxy.render_as_string(hide_password=False))
    try:
        yield ledger
    finally:
        ledger.close()


def assert_recorded_once(pg_url: str, led: Ledger, users: dict[str, UUID]) -> None:
    """Each user created once, with its claim; the chain intact; the read model right."""
    names = event_names(led)
    assert names.count("UserCreated") == len(users), names
    for email, user in users.items():
        assert led.user_id_for_email(email) == user
    with Audit(pg_url) as audit:
        verified = audit.verify()
    assert verified.ok, verified.summary()
    assert verified.events == len(names)
    model = ReadModel(pg_url)
    try:
        model.catch_up()
        for email, user in users.items():
            found = model.get_user(user)
            assert found is not None and found.email == email
    finally:
        model.close()


@pytest.mark.parametrize("when", ["after", "before"])
def test_a_command_whose_connection_drops_is_recorded_once(
    pg_url: str, led: Ledger, proxy: DroppingProxy, when: When
) -> None:
    acme = led.create_account("Acme", actor=ADMIN)
    led.define_role("consultant", actor=ADMIN)
    proxy.arm(when)
    bob = led.create_user("bob@example.org", account_id=acme, actor=ADMIN)
    assert proxy.dropped == 1
    assert led.last_recorded
    proxy.arm(when)
    assert led.grant_role(bob, "consultant", actor=ADMIN, command_id="grant-bob") is True
    assert proxy.dropped == 2
    assert led.last_recorded
    # the command id, sent again, returns its first result and records nothing more
    assert led.grant_role(bob, "consultant", actor=ADMIN, command_id="grant-bob") is True
    assert not led.last_recorded
    assert event_names(led).count("RoleGranted") == 1
    assert_recorded_once(pg_url, led, {"bob@example.org": bob})
    model = ReadModel(pg_url)
    try:
        model.catch_up()
        assert model.roles(bob) == {"consultant"}
    finally:
        model.close()


@pytest.mark.parametrize("when", ["after", "before"])
def test_a_batch_whose_connection_drops_is_recorded_once(
    pg_url: str, led: Ledger, proxy: DroppingProxy, when: When
) -> None:
    """A batch's save takes two round trips (its links computed here): the drop comes in
    the second, with the COMMIT."""
    acme = led.create_account("Acme", actor=ADMIN)
    with led.batch() as batch:
        users = {
            f"user{n}@example.org": led.create_user(
                f"user{n}@example.org", account_id=acme, actor=ADMIN, command_id=f"create-{n}"
            )
            for n in range(12)
        }
        proxy.arm(when)
        batch.commit()
    assert proxy.dropped == 1
    assert_recorded_once(pg_url, led, users)


@pytest.mark.parametrize("when", ["after", "before"])
def test_another_writers_event_after_a_drop_is_not_taken_for_the_saves_own(
    pg_url: str, led: Ledger, proxy: DroppingProxy, when: When
) -> None:
    """Between the drop and the retry another writer records an event of the same user. Had
    the save committed ("after"), it is recognised all the same; had it not ("before"), the
    retry clashes with the other writer's event, at the version the save wanted: the clash
    stands, and the command runs again on fresh state."""
    acme = led.create_account("Acme", actor=ADMIN)
    for role in ("consultant", "auditor"):
        led.define_role(role, actor=ADMIN)
    bob = led.create_user("bob@example.org", account_id=acme, actor=ADMIN)
    other = Ledger(pg_url)
    try:
        proxy.arm(when, lambda: other.grant_role(bob, "auditor", actor=ADMIN))
        # no command id: the events alone tell the save's own from the other writer's
        assert led.grant_role(bob, "consultant", actor=ADMIN) is True
        assert led.last_recorded
    finally:
        other.close()
    assert proxy.dropped == 1
    assert event_names(led).count("RoleGranted") == 2
    assert led.repository.get(bob).roles == {"consultant", "auditor"}
    assert_recorded_once(pg_url, led, {"bob@example.org": bob})
