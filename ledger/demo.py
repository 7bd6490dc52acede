"""`ledger demo`: records a realistic platform history, so there is something to look at.

A consultancy with client accounts, their staff joining over a year, role grants and
revocations, a leaver, logins and a holiday annotation, all on a simulated clock that runs from
a year ago to now. Deterministic for a given seed.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID

from ledger.application import Ledger
from ledger.domain import Account, User

DEMO_ACTOR = "demo:platform-admin"
USER_ROLES = {
    "admin": "Full access to every account",
    "admin-reader": "Read access to every account",
    "account-admin": "Administers the users of their own account",
    "consultant": "Reads the accounts their consultancy advises",
}
FIRST_NAMES = [
    "ann",
    "bob",
    "carla",
    "dev",
    "eva",
    "femke",
    "gijs",
    "hana",
    "ivo",
    "jun",
    "kees",
    "lena",
    "mo",
    "noor",
    "otto",
    "pia",
]
LAST_NAMES = ["smit", "jansen", "devries", "bakker", "visser", "mulder", "bos", "meijer"]


class SimulatedClock:
    """Event timestamps for a history recorded in seconds but spread over a year."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class DemoHistory:
    accounts: dict[str, UUID] = field(default_factory=dict)
    users: list[UUID] = field(default_factory=list)


def record_demo(url: str, *, seed: int = 7, now: datetime | None = None) -> DemoHistory:
    """Record the demo history into the (empty) database at `url`."""
    rng = random.Random(seed)
    end = now or datetime.now(UTC)
    clock = SimulatedClock(end - timedelta(days=365))
    led = Ledger(url, clock=clock)
    history = DemoHistory()
    try:
        for role, description in USER_ROLES.items():
            led.define_role(role, description, actor=DEMO_ACTOR)
        led.define_account_role("Consultancy", "Advises client accounts", actor=DEMO_ACTOR)

        consultancy = led.create_account(
            "Seita Consultancy",
            actor=DEMO_ACTOR,
            roles=["Consultancy"],
            primary_color="#1a3b5c",
            secondary_color="#f5a623",
            logo_url="https://seita.example/logo.png",
        )
        history.accounts["Seita Consultancy"] = consultancy
        for name in ("Greenhouse Westland", "Solar Coop Zuid", "Harbour Batteries"):
            clock.advance(days=rng.randint(5, 20))
            history.accounts[name] = led.create_account(
                name, actor=DEMO_ACTOR, consultancy_account_id=consultancy
            )

        names = iter(rng.sample([(f, s) for f in FIRST_NAMES for s in LAST_NAMES], 16))
        for account_name, account_id in history.accounts.items():
            domain = account_name.split()[0].lower() + ".example"
            for position in range(4):
                clock.advance(days=rng.randint(1, 12), hours=rng.randint(0, 8))
                first, last = next(names)
                if account_name == "Seita Consultancy":
                    roles = ["admin"] if position == 0 else ["consultant"]
                else:
                    roles = ["account-admin"] if position == 0 else []
                history.users.append(
                    led.create_user(
                        f"{first}.{last}@{domain}",
                        account_id=account_id,
                        actor=DEMO_ACTOR,
                        roles=roles,
                        timezone="Europe/Amsterdam",
                        password=f"demo-{first}",
                    )
                )

        for user_id in history.users:
            for _ in range(rng.randint(1, 6)):
                clock.advance(hours=rng.randint(1, 90))
                led.record_login(user_id, at=clock.now, ip=f"192.0.2.{rng.randint(1, 254)}")

        clock.advance(days=30)
        promoted = history.users[5]
        led.grant_role(promoted, "account-admin", actor=DEMO_ACTOR, reason="Team lead (JIRA-12)")
        clock.advance(days=40)
        led.revoke_role(
            history.users[2], "consultant", actor=DEMO_ACTOR, reason="Moved to internal projects"
        )
        clock.advance(days=25)
        led.deactivate_user(history.users[9], actor=DEMO_ACTOR, reason="Left the company")
        clock.advance(days=10)
        led.add_annotation(
            history.accounts["Greenhouse Westland"],
            content="Christmas holidays",
            start=datetime(end.year - 1, 12, 24, tzinfo=UTC),
            end=datetime(end.year - 1, 12, 27, tzinfo=UTC),
            source="Holiday calendar",
            type="holiday",
            actor=DEMO_ACTOR,
        )
    finally:
        led.close()
    return history


def describe(url: str, history: DemoHistory) -> dict[str, object]:
    """What the demo recorded, read back from the stored events."""
    led = Ledger(url)
    try:
        events = Counter(
            n.topic.rsplit(".", 1)[-1]
            for n in led.recorder.select_notifications(start=None, limit=10_000_000)
        )
        accounts = []
        for name, account_id in history.accounts.items():
            account: Account = led.repository.get(account_id)
            accounts.append(
                {"name": name, "users": len(account.members), "roles": sorted(account.roles)}
            )
        users = []
        for user_id in history.users:
            user: User = led.repository.get(user_id)
            account = led.repository.get(user.account_id)
            users.append(
                {
                    "email": user.email,
                    "account": account.name,
                    "roles": sorted(user.roles),
                    "active": user.active,
                    "logins": user.login_count,
                    "last_login_at": user.last_login_at,
                }
            )
        return {"events": dict(events), "accounts": accounts, "users": users}
    finally:
        led.close()
