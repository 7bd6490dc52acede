#!/usr/bin/env python3
"""CPU per `GET /api/v3_0/users/<id>` (or another route: --path) of the read API driven
in-process by raw ASGI calls (no HTTP server, no client library): what the app itself costs,
measured as CPU time, which a loaded machine disturbs far less than wall-clock time
(`scripts/api_load.py` measures that).

    python scripts/api_cpu.py                       # a SQLite file in a temporary folder
    python scripts/api_cpu.py --url postgresql+psycopg://postgres@127.0.0.1/api_cpu

The database of --url must exist and hold no events; it gets `api_load.py`'s admin and 100 users.
Also prints the context switches a request: voluntary ones are waits (a thread hop, a lock,
a round trip), involuntary ones the machine's other load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import api_load


async def call(
    app: Any, path: str, token: str | None, method: str = "GET", body: bytes = b""
) -> tuple[int, bytes]:
    """One request through the ASGI app: (status, body)."""
    headers = [(b"host", b"127.0.0.1")]
    if token:
        headers.append((b"authorization", token.encode()))
    if body:
        headers.append((b"content-type", b"application/json"))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    sent = False
    status = 0
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)  # the client never disconnects
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


async def drive(app: Any, paths: list[str], token: str, requests: int, concurrency: int) -> None:
    left = [requests]

    async def one_at_a_time() -> None:
        while left[0] > 0:
            left[0] -= 1
            status, body = await call(app, paths[left[0] % len(paths)], token)
            if status != 200:
                raise RuntimeError(f"HTTP {status}: {body[:200]!r}")

    await asyncio.gather(*(one_at_a_time() for _ in range(concurrency)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="an empty database (default: a temporary SQLite file)")
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--path",
        default="/api/v3_0/users/{user}",
        help="the route to drive, `{user}` standing for each user's id in turn",
    )
    arguments = parser.parse_args()
    from projections.api import create_app

    with tempfile.TemporaryDirectory() as folder:
        url = arguments.url or f"sqlite:///{Path(folder) / 'ledger.db'}"
        users = api_load._populate(url, 100)
        paths = [arguments.path.format(user=user) for user in users]
        app = create_app(url)
        login = json.dumps({"email": api_load.ADMIN, "password": api_load.PASSWORD}).encode()
        _, answer = asyncio.run(call(app, "/api/requestAuthToken", None, "POST", login))
        token = str(json.loads(answer)["auth_token"])
        asyncio.run(drive(app, paths, token, 200, arguments.concurrency))  # warm up
        for _ in range(arguments.rounds):
            before = resource.getrusage(resource.RUSAGE_SELF)
            cpu, wall = time.process_time(), time.perf_counter()
            asyncio.run(drive(app, paths, token, arguments.requests, arguments.concurrency))
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            after = resource.getrusage(resource.RUSAGE_SELF)
            n = arguments.requests
            print(
                f"CPU {cpu / n * 1000:.3f} ms a request (wall {wall / n * 1000:.3f} ms); "
                f"context switches a request: {(after.ru_nvcsw - before.ru_nvcsw) / n:.2f} "
                f"voluntary, {(after.ru_nivcsw - before.ru_nivcsw) / n:.2f} involuntary"
            )
        app.state.services.close()


if __name__ == "__main__":
    main()
