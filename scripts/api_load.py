#!/usr/bin/env python3
"""Read-API throughput: `GET /api/v3_0/users/<id>` with a token, through a real `ledger serve
--workers N` (uvicorn), beside a bare FastAPI route returning a constant served the same way
(same uvicorn, same workers), both driven by the same bounded load generator: a fixed number
of keep-alive connections sending a fixed number of requests, each awaiting its answer.

    python scripts/api_load.py                      # a SQLite file in a temporary folder
    python scripts/api_load.py --url postgresql+psycopg://postgres@127.0.0.1/api_load

The PostgreSQL database of --url must exist and hold no events. The generator speaks HTTP/1.1
on asyncio streams itself: an HTTP client library (httpx) costs more per request than the bare
route does, and would measure the client.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx

from ledger import Ledger

PASSWORD = "api-load"
ACTOR = "cli:api-load"
ADMIN = "admin@platform.example"
FLOOR_VARIABLE = "LEDGER_API_FLOOR"  # [the database's URL, the caller's token] (JSON)


@dataclass(frozen=True)
class Load:
    """What one run of the generator measured."""

    requests: int
    seconds: float
    latencies: list[float]  # sorted

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        return self.latencies[min(len(self.latencies) - 1, int(q * len(self.latencies)))]


def bare_app() -> object:
    """The reference: a FastAPI app whose one route returns a constant."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/api/v3_0/users/{id}")
    def constant(id: str) -> dict[str, str]:
        return {"id": "constant"}

    return app


def floor_app() -> object:
    """The read API's floor: a FastAPI app whose one route sends, raw on the driver, the
    statements that one `GET /api/v3_0/users/<id>` of the read API sends (the token check's,
    then the user's and their account's), with the same parameters, and returns a constant:
    nothing else of a request (the token's signature, the models, the answer) is done. The
    cheapest way measured: on the worker's one DB-API connection, in the event loop (which
    waits, blocked, for each answer: no thread hop, no async driver); on PostgreSQL all three
    in one pipeline (one round trip). An async psycopg connection cost more CPU a request
    than the read API's whole thread path. The database and the caller's token come in
    `FLOOR_VARIABLE`."""
    from fastapi import FastAPI

    from projections.api.auth import TokenService
    from projections.read_model import ReadModel

    url, token = json.loads(os.environ[FLOOR_VARIABLE])
    ledger, rm = Ledger(url), ReadModel(url)
    tokens = TokenService(ledger, 3600, rm.reader)
    caller = tokens.authenticate(token).user.id  # rebuilt once, as by a warm worker
    confirming = tokens.confirming(caller)

    def sent(user_id: str) -> list[tuple[str, Any]]:
        asked = [confirming, *rm.user_with_account_reads(UUID(user_id))]
        prepared = [(rm.reader.prepared(statement), values) for statement, values in asked]
        return [(query.sql, query.parameters(values)) for query, values in prepared]

    proxy = rm.engine.raw_connection()  # the driver's connection, as the reader's threads hold
    proxy.detach()
    connection: Any = proxy.dbapi_connection
    rm.engine.dialect.set_isolation_level(connection, "AUTOCOMMIT")
    together = connection.pipeline if hasattr(connection, "pipeline") else contextlib.nullcontext
    app = FastAPI()

    @app.get("/api/v3_0/users/{id}")
    async def statements_alone(id: str) -> dict[str, str]:
        statements = sent(id)
        cursors = [connection.cursor() for _ in statements]
        with together():
            for cursor, (sql, parameters) in zip(cursors, statements, strict=True):
                cursor.execute(sql, parameters)
        for cursor in cursors:
            cursor.fetchall()
            cursor.close()
        return {"id": "constant"}

    return app


def serve(factory: str, port: int, workers: int) -> None:
    """An app of this module (`bare_app`, `floor_app`), served as `ledger serve` serves the
    read API (same uvicorn options)."""
    import uvicorn

    from projections.api.server import NoDelayH11Protocol

    uvicorn.run(
        f"api_load:{factory}",
        factory=True,
        app_dir=str(Path(__file__).parent),
        host="127.0.0.1",
        port=port,
        workers=workers,
        log_level="info",
        http=NoDelayH11Protocol,
        timeout_worker_healthcheck=60,
    )


def measure(
    url: str, requests: int, concurrency: int, workers: int, rounds: int = 3
) -> tuple[Load, Load, Load]:
    """(the read API's best run, the bare route's, the floor's: `floor_app`) on the database
    at `url`, which gets an admin with a password and `users` users first; runs alternate
    between the three servers, `rounds` each."""
    user_ids = _populate(url, 100)
    serve_app = [sys.executable, __file__, "--serve"]
    with (
        _server(
            [str(Path(sys.executable).parent / "ledger"), "--db", url, "serve"], workers
        ) as api,
        _server([*serve_app, "bare_app"], workers) as bare,
    ):
        token = _token(api)
        floor_given = {FLOOR_VARIABLE: json.dumps([url, token])}
        with _server([*serve_app, "floor_app"], workers, floor_given) as floor:
            paths = [f"/api/v3_0/users/{user_id}" for user_id in user_ids]
            best: dict[str, Load] = {}
            for _ in range(rounds):
                for name, port in (("api", api), ("bare", bare), ("floor", floor)):
                    run = asyncio.run(generate(port, paths, token, requests, concurrency))
                    if name not in best or run.rate > best[name].rate:
                        best[name] = run
    return best["api"], best["bare"], best["floor"]


async def generate(
    port: int, paths: list[str], token: str, requests: int, concurrency: int
) -> Load:
    """Send `requests` GETs over `concurrency` keep-alive connections, each waiting for its
    answer before the next; every answer must be 200."""
    heads = [
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: {token}\r\n\r\n".encode()
        for path in paths
    ]
    latencies: list[float] = []
    left = [requests]

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while left[0] > 0:
                left[0] -= 1
                head = heads[left[0] % len(heads)]
                begin = time.perf_counter()
                writer.write(head)
                status, body = await _answer(reader)
                latencies.append(time.perf_counter() - begin)
                if status != 200:
                    raise RuntimeError(f"HTTP {status}: {body[:200]!r}")
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    seconds = time.perf_counter() - start
    return Load(requests, seconds, sorted(latencies))


async def _answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)


def _populate(url: str, users: int) -> list[UUID]:
    ledger = Ledger(url)
    try:
        ledger.define_role("admin", actor=ACTOR)
        ledger.define_role("viewer", actor=ACTOR)
        account = ledger.create_account("Platform", actor=ACTOR)
        ledger.create_user(
            ADMIN, account_id=account, actor=ACTOR, roles=["admin"], password=PASSWORD
        )
        return [
            ledger.create_user(
                f"user{n}@platform.example", account_id=account, actor=ACTOR, roles=["viewer"]
            )
            for n in range(users)
        ]
    finally:
        ledger.close()


@contextmanager
def _server(command: list[str], workers: int, given: dict[str, str] | None = None) -> Iterator[int]:
    port = _free_port()
    process = subprocess.Popen(
        [*command, "--port", str(port), "--workers", str(workers)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **(given or {}), "PYTHONPATH": _python_path()},
    )
    try:
        _wait(port, process)
        yield port
    finally:
        process.terminate()  # uvicorn's supervisor stops its workers
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _python_path() -> str:
    """This folder (the bare app's module) before the caller's PYTHONPATH, which names the
    tree to serve: without it, the servers would import the installed (editable) checkout."""
    given = os.environ.get("PYTHONPATH")
    here = str(Path(__file__).parent)
    return here if not given else os.pathsep.join([here, given])


def _wait(port: int, process: subprocess.Popen[bytes]) -> None:
    """Until the server answers (its workers import the app first: slow on a busy machine)."""
    deadline = time.monotonic() + 300
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/docs", timeout=5)
            return
        except httpx.TransportError:
            if process.poll() is not None:
                raise RuntimeError(f"{process.args!r} exited with {process.returncode}") from None
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _token(port: int) -> str:
    response = httpx.post(
        f"http://127.0.0.1:{port}/api/requestAuthToken",
        json={"email": ADMIN, "password": PASSWORD},
        timeout=30,
    )
    response.raise_for_status()
    return str(response.json()["auth_token"])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="an empty database (default: a temporary SQLite file)")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--serve", choices=["bare_app", "floor_app"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.serve:
        serve(arguments.serve, arguments.port, arguments.workers)
        return
    with tempfile.TemporaryDirectory() as folder:
        url = arguments.url or f"sqlite:///{Path(folder) / 'ledger.db'}"
        api, bare, floor = measure(
            url, arguments.requests, arguments.concurrency, arguments.workers
        )
    for name, load in (
        ("GET /api/v3_0/users/<id>", api),
        ("bare FastAPI constant", bare),
        ("floor: its statements alone", floor),
    ):
        print(
            f"{name}: {load.rate:,.0f} requests/s, p50 {load.percentile(0.5) * 1000:.1f} ms, "
            f"p99 {load.percentile(0.99) * 1000:.1f} ms"
        )
    print(f"ratio {api.rate / bare.rate:.2f} (target >= 0.50); floor {floor.rate / bare.rate:.2f}")


if __name__ == "__main__":
    main()
