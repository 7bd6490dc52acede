#!/usr/bin/env python3
"""Change-feed latency: from recording a command to a long-polling consumer's answer holding
it, through a real `ledger serve` process (uvicorn) on an empty database of its own.

    python scripts/feed_latency.py                      # a SQLite file in a temporary folder
    python scripts/feed_latency.py --url postgresql+psycopg://postgres@127.0.0.1/feed_latency

The PostgreSQL database of --url must exist and hold no events.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from ledger import Ledger

PASSWORD = "feed-latency"
ACTOR = "cli:feed-latency"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="an empty database (default: a temporary SQLite file)")
    parser.add_argument("--samples", type=int, default=40)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = arguments.url or f"sqlite:///{Path(folder) / 'ledger.db'}"
        latencies, round_trips = measure(url, arguments.samples)
    latencies.sort()
    print(
        f"feed latency, command to consumer, {len(latencies)} changes: "
        f"p50 {statistics.median(latencies) * 1000:.0f} ms, "
        f"p90 {latencies[int(len(latencies) * 0.9)] * 1000:.0f} ms, "
        f"max {latencies[-1] * 1000:.0f} ms; a plain GET /api/ of the same server: "
        f"p50 {statistics.median(round_trips) * 1000:.1f} ms"
    )


def measure(url: str, samples: int) -> tuple[list[float], list[float]]:
    """The latencies from each recorded command to the long-polling consumer's answer, and,
    as a reference, the round trips of as many plain `GET /api/` to the same server."""
    ledger = Ledger(url)
    ledger.define_role("admin", actor=ACTOR)
    ledger.define_role("consultant", actor=ACTOR)
    account = ledger.create_account("Platform", actor=ACTOR)
    ledger.create_user(
        "admin@platform.example",
        account_id=account,
        actor=ACTOR,
        roles=["admin"],
        password=PASSWORD,
    )
    user = ledger.create_user("member@platform.example", account_id=account, actor=ACTOR)
    port = _free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "ledger"), "--db", url, "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        client = httpx.Client(base_url=base, timeout=30)
        token = _token(client)
        headers = {"Authorization": token}
        cursor = ledger.recorder.max_notification_id() or 0
        latencies = []
        for sample in range(samples):
            answer: dict[str, Any] = {}

            def consume(after: int = cursor, found: dict[str, Any] = answer) -> None:
                response = client.get(
                    "/api/v3_0/auditlog/changes",
                    headers=headers,
                    params={"after": after, "wait": 20},
                )
                found["at"] = time.monotonic()
                found["body"] = response.json()

            consumer = threading.Thread(target=consume)
            consumer.start()
            time.sleep(0.3 + (sample % 7) * 0.037)  # the consumer waiting, at varied phases
            recorded = time.monotonic()
            change = ledger.grant_role if sample % 2 == 0 else ledger.revoke_role
            change(user, "consultant", actor=ACTOR)
            consumer.join()
            latencies.append(answer["at"] - recorded)
            cursor = answer["body"]["next"]
        round_trips = []
        for _ in range(samples):
            begin = time.monotonic()
            client.get("/api/").raise_for_status()
            round_trips.append(time.monotonic() - begin)
        return latencies, round_trips
    finally:
        server.terminate()
        server.wait()
        ledger.close()


def _token(client: httpx.Client) -> str:
    deadline = time.monotonic() + 30
    while True:
        try:
            response = client.post(
                "/api/requestAuthToken",
                json={"email": "admin@platform.example", "password": PASSWORD},
            )
            return str(response.json()["auth_token"])
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


if __name__ == "__main__":
    main()
