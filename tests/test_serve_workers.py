"""`ledger serve --workers N`: several uvicorn worker processes answer the read API, each
connection with TCP_NODELAY (uvicorn binds the socket itself then, and asyncio leaves Nagle's
algorithm on: each answer's body waited for the client's delayed ACK)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from uvicorn.config import Config
from uvicorn.server import ServerState

from ledger import Ledger
from projections.api.server import NoDelayH11Protocol
from tests.conftest import ADMIN


class _Transport:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.sock if name == "socket" else default

    def is_closing(self) -> bool:
        return False


def test_every_connection_gets_tcp_nodelay() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None: ...  # uvicorn tries app()

    config = Config(app=app, http=NoDelayH11Protocol, interface="asgi3")
    config.load()
    with socket.socket() as listening, socket.socket() as client:  # protocol 0, as uvicorn binds
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        client.connect(listening.getsockname())
        accepted, _ = listening.accept()
        with accepted:
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
            # the protocol takes the current event loop: one of its own, whatever tests
            # before this one (in this process) left set
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                protocol = NoDelayH11Protocol(
                    config=config, server_state=ServerState(), app_state={}
                )
                protocol.connection_made(_Transport(accepted))  # type: ignore[arg-type]
            finally:
                asyncio.set_event_loop(None)
                loop.close()
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_serve_with_two_workers_answers_the_read_api(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    led = Ledger(url)
    try:
        led.define_role("admin", actor=ADMIN)
        account = led.create_account("Acme", actor=ADMIN)
        admin = led.create_user(
            "root@acme.example", account_id=account, roles=["admin"], password="pw", actor=ADMIN
        )
    finally:
        led.close()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ledger = str(Path(sys.executable).parent / "ledger")
    server = subprocess.Popen(
        [ledger, "--db", url, "serve", "--port", str(port), "--workers", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                token = httpx.post(
                    f"{base}/api/requestAuthToken",
                    json={"email": "root@acme.example", "password": "pw"},
                    timeout=30,
                ).json()["auth_token"]
                break
            except httpx.TransportError:
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                assert time.monotonic() < deadline
                time.sleep(0.2)
        with httpx.Client(base_url=base, headers={"Authorization": token}, timeout=30) as client:
            for _ in range(20):  # over both workers, on one connection and on new ones
                answer = client.get(f"/api/v3_0/users/{admin}")
                assert answer.status_code == 200, answer.text
                assert answer.json()["email"] == "root@acme.example"
                assert answer.headers["API-Version"] == "v3_0"
                assert "FlexMeasures-Version" in answer.headers
                assert httpx.get(f"{base}/api/v3_0/users/{admin}").status_code == 401
    finally:
        server.terminate()
        server.wait(60)
        if server.stderr is not None:
            server.stderr.close()
