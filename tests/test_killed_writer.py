"""A writer killed with SIGKILL at any moment, round after round: every command it ran is
recorded whole or not at all (its events, its claim, its key and its command id together),
none twice, and the chain verifies. The command it was running when killed, run again under
its command id, is then recorded once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from uuid import UUID

import pytest

from ledger import Ledger
from ledger.audit import Audit
from tests.helpers import event_names

pytestmark = pytest.mark.slow

ROUNDS = 5

WRITER = """
import sys
from ledger import Ledger
url, account, round_ = sys.argv[1:]
led = Ledger(url, create=False)
print("ready", flush=True)
for n in range(100_000):
    user = led.create_user(
        f"r{round_}-{n}@example.org",
        account_id=account,
        roles=["consultant"],
        actor="cli:writer",
        command_id=f"r{round_}-{n}",
    )
    print(n, user, flush=True)
"""


def count(led: Ledger, table: str, where: str = "") -> int:
    row = led.side.select_one(f"SELECT COUNT(*) AS n FROM {table} {where}", ())
    assert row is not None
    return int(row["n"])


def test_a_writer_killed_at_any_moment_leaves_whole_commands(led: Ledger, acme: UUID) -> None:
    rng = random.Random(19)
    users: dict[str, UUID] = {}
    for round_ in range(ROUNDS):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, led.url, str(acme), str(round_)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).parent.parent,
        )
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "ready"
        # a few commands, then a kill at any instant
        printed = [writer.stdout.readline() for _ in range(rng.randint(0, 15))]
        time.sleep(rng.uniform(0, 0.01))
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        printed += writer.stdout.read().splitlines()
        writer.stdout.close()
        done = [line for line in printed if line.count(" ") == 1]
        for line in done:
            n, user_id = line.split()
            users[f"r{round_}-{n}@example.org"] = UUID(user_id)
        # the command it was running when killed: recorded or not, run again it is recorded
        in_flight = len(done)
        email = f"r{round_}-{in_flight}@example.org"
        users[email] = led.create_user(
            email,
            account_id=acme,
            roles=["consultant"],
            actor="cli:writer",
            command_id=f"r{round_}-{in_flight}",
        )
    names = event_names(led)
    assert names.count("UserCreated") == len(users)
    assert names.count("RoleGranted") == len(users)
    assert count(led, "ledger_claims", "WHERE kind = 'email'") == len(users)
    assert count(led, "ledger_user_keys") == len(users)
    assert count(led, "ledger_commands") == len(users)  # the fixture's commands have no id
    for email, user in users.items():
        assert led.user_id_for_email(email) == user
        assert led.repository.get(user).roles == {"consultant"}
    with Audit(led.url) as audit:
        verified = audit.verify()
    assert verified.ok, verified.summary()
    assert verified.events == len(names)
