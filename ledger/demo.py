"""The demo history: a year of a consultancy and its client accounts, recorded on a simulated
clock that runs from a year ago to now. Deterministic for a given seed.

What happens: roles are defined; a consultancy and six client accounts are created; staff join
over the year (and a few leave); roles are granted, changed and revoked; one client gains its
consultancy late and another loses it; a consultant gains and later loses access; people log in
at their own rhythm (some fall dormant); holidays and alerts are annotated; a client account is
closed; one leaver's personal data is erased on request. A separation-of-duties rule keeps
consultants from reading the whole platform, save one approved exception: a consultant's
two-week `admin-reader` grant for an audit, which ends by itself and is recorded as expired.
A quarterly access review of the client-facing roles certifies most grants, revokes one
consultant's, leaves the reviewer's own undecided, and is closed before it is due.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from ledger.application import Ledger
from ledger.domain.reviews import ReviewCampaign, campaign_id, split_item_id
from ledger.errors import LedgerError

DEMO_ACTOR = "demo:platform-admin"
DEMO_PASSWORD = "demo-password"  # set for the first user of each account, to try the read API
USER_ROLES = {
    "admin": "Full access to every account",
    "admin-reader": "Read access to every account",
    "account-admin": "Administers the users of their own account",
    "consultant": "Reads the accounts their consultancy advises",
}
CONSULTANCY = "Seita Energy Consultancy"
CLIENTS = [
    ("Greenhouse Westland", "greenhouse-westland.example"),
    ("Solar Coop Zuid", "solarcoop.example"),
    ("Harbour Batteries", "harbour-batteries.example"),
    ("Polder Wind", "polderwind.example"),
    ("Dairy Friesland", "dairy-friesland.example"),
    ("City Heat Utrecht", "cityheat.example"),
]
CLOSING, CLOSING_DAY = "City Heat Utrecht", 300  # a client that leaves the platform
REVIEW_DAY, REVIEW_DAYS = 275, 30  # the quarterly access review: its start, and time to do it
REVIEWED_ROLES = ("consultant", "account-admin", "admin-reader")
FIRST = [
    "ann",
    "bas",
    "carla",
    "daan",
    "eva",
    "femke",
    "gijs",
    "hana",
    "ivo",
    "jun",
    "kees",
    "lotte",
    "mo",
    "noor",
    "otto",
    "pia",
    "quinten",
    "roos",
    "sem",
    "tess",
    "umar",
    "vera",
    "wim",
    "xander",
    "yara",
    "zoe",
]
LAST = [
    "smit",
    "jansen",
    "devries",
    "bakker",
    "visser",
    "mulder",
    "bos",
    "meijer",
    "dekker",
    "peters",
    "hendriks",
    "vandijk",
]


class SimulatedClock:
    """Event timestamps for a history recorded in seconds but spread over a year."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


@dataclass
class DemoHistory:
    start: datetime
    end: datetime
    accounts: dict[str, UUID] = field(default_factory=dict)
    users: dict[str, UUID] = field(default_factory=dict)  # by email
    dormant: list[str] = field(default_factory=list)
    leavers: list[str] = field(default_factory=list)
    erased: list[str] = field(default_factory=list)
    review: str | None = None  # the quarterly access review's campaign


@dataclass(order=True)
class _Action:
    at: datetime
    order: int
    run: Callable[[], Any] = field(compare=False)


class _Script:
    """Actions scheduled at simulated instants, then played in time order."""

    def __init__(self) -> None:
        self.actions: list[_Action] = []

    def at(self, moment: datetime, run: Callable[[], Any]) -> None:
        self.actions.append(_Action(moment, len(self.actions), run))

    def play(
        self,
        led: Ledger,
        clock: SimulatedClock,
        batch_size: int = 500,
        before: datetime | None = None,
    ) -> None:
        """Play the actions scheduled (before `before`, if given) and forget them."""
        ordered = sorted(a for a in self.actions if before is None or a.at < before)
        self.actions = [a for a in self.actions if before is not None and a.at >= before]
        for start in range(0, len(ordered), batch_size):
            with led.batch() as batch:
                for action in ordered[start : start + batch_size]:
                    clock.now = action.at
                    action.run()
                batch.commit()


def record_demo(url: str, *, seed: int = 7, now: datetime | None = None) -> DemoHistory:
    """Record the demo history into the (empty) database at `url`."""
    rng = random.Random(seed)
    end = (now or datetime.now(UTC)).replace(microsecond=0)
    start = end - timedelta(days=365)
    clock = SimulatedClock(start)
    led = Ledger(url, clock=clock)
    history = DemoHistory(start=start, end=end)
    script = _Script()
    day = timedelta(days=1)

    def on(days: float, run: Callable[[], Any]) -> None:
        script.at(start + days * day, run)

    try:
        clock.now = start
        for role, description in USER_ROLES.items():
            led.define_role(role, description, actor=DEMO_ACTOR)
        led.define_account_role("Consultancy", "Advises client accounts", actor=DEMO_ACTOR)
        led.define_sod_rule(
            "consultants-do-not-audit",
            ["consultant", "admin-reader"],
            actor=DEMO_ACTOR,
            reason="SOX ITGC: who advises clients does not review the platform",
        )
        seita = led.create_account(
            CONSULTANCY,
            actor=DEMO_ACTOR,
            roles=["Consultancy"],
            primary_color="#1a3b5c",
            secondary_color="#f5a623",
            logo_url="https://seita.example/logo.png",
        )
        history.accounts[CONSULTANCY] = seita
        for index, (name, _domain) in enumerate(CLIENTS):
            clock.now = start + (3 + 9 * index) * day
            advised = name != "Polder Wind"  # Polder Wind gains its consultancy later
            history.accounts[name] = led.create_account(
                name,
                actor=DEMO_ACTOR,
                consultancy_account_id=seita if advised else None,
                reason="Contract signed",
            )

        names = iter(rng.sample([f"{f}.{s}" for f in FIRST for s in LAST], 80))
        staff = [(CONSULTANCY, "seita.example", 9), *[(n, d, 9) for n, d in CLIENTS]]
        for account_name, domain, size in staff:
            opened = (
                0
                if account_name == CONSULTANCY
                else 3 + 9 * CLIENTS.index(next(c for c in CLIENTS if c[0] == account_name))
            )
            for position in range(size):
                email = f"{next(names)}@{domain}"
                joined = opened + (
                    position * rng.uniform(2, 6) if position < 6 else rng.uniform(120, 330)
                )  # later joiners
                _schedule_user(
                    script,
                    led,
                    history,
                    rng,
                    account_name,
                    email,
                    position,
                    start + joined * day,
                    end,
                )

        def consultancy_for_polder_wind() -> None:
            led.set_consultancy(
                history.accounts["Polder Wind"],
                seita,
                actor=DEMO_ACTOR,
                reason="Advisory contract started",
            )

        def harbour_drops_consultancy() -> None:
            led.set_consultancy(
                history.accounts["Harbour Batteries"],
                None,
                actor=DEMO_ACTOR,
                reason="Advisory contract ended",
            )

        on(150, consultancy_for_polder_wind)
        on(240, harbour_drops_consultancy)
        on(
            CLOSING_DAY,
            lambda: led.close_account(
                history.accounts[CLOSING], actor=DEMO_ACTOR, reason="Customer left the platform"
            ),
        )
        _schedule_annotations(script, led, history, rng, start, end)
        review_start = start + REVIEW_DAY * day
        script.play(led, clock, before=review_start)
        clock.now = review_start
        _quarterly_review(script, led, history, review_start)
        script.play(led, clock)
        clock.now = end
        led.expire_grants(actor="demo:expiry", reason="ledger expire")
    finally:
        led.close()
    return history


def _quarterly_review(
    script: _Script, led: Ledger, history: DemoHistory, started: datetime
) -> None:
    """A quarterly access review of the privileged client-facing roles: a reviewer of the
    consultancy decides the grants (one consultant's access revoked; the last item, and any
    about the reviewer, left undecided), and the campaign is closed before it is due."""
    quarter = (started.month - 1) // 3 + 1
    name = f"access-review-{started.year}-Q{quarter}"
    history.review = name
    staff = [email for email in history.users if email.endswith("@seita.example")]
    for email in staff:  # the first member of the consultancy still active is the reviewer
        try:
            led.start_review(
                name,
                scope={"roles": list(REVIEWED_ROLES)},
                reviewer=history.users[email],
                due=started + timedelta(days=REVIEW_DAYS),
                actor=DEMO_ACTOR,
                reason="Quarterly user access review (SOX ITGC, SOC 2 CC6.2)",
            )
        except LedgerError:
            continue
        reviewer = history.users[email]
        break
    else:
        return
    campaign: ReviewCampaign = led.repository.get(campaign_id(name))
    items = sorted(campaign.items.items(), key=lambda entry: split_item_id(entry[0])[1])
    revoked = next(
        (item for item, (user, role) in items if role == "consultant" and user != str(reviewer)),
        None,
    )
    for number, (item, (user, _role)) in enumerate(items[:-1]):  # the last: left undecided
        if user == str(reviewer):
            continue  # nobody reviews their own access: left undecided

        def decide(item: str = item) -> None:
            try:
                if item == revoked:
                    led.revoke_via_review(
                        item, reviewer=reviewer, reason="No client work since Q2", actor=DEMO_ACTOR
                    )
                else:
                    led.certify(item, reviewer=reviewer, reason="Still needed", actor=DEMO_ACTOR)
            except LedgerError:  # the grant ended meanwhile: left undecided
                pass

        script.at(started + timedelta(days=1, hours=number), decide)
    script.at(
        started + timedelta(days=REVIEW_DAYS - 2),
        lambda: led.close_review(name, actor=DEMO_ACTOR, reason="Review signed off"),
    )


def _schedule_user(
    script: _Script,
    led: Ledger,
    history: DemoHistory,
    rng: random.Random,
    account: str,
    email: str,
    position: int,
    joined: datetime,
    end: datetime,
) -> None:
    in_consultancy = account == CONSULTANCY
    if in_consultancy:
        roles = (
            [["admin"], ["admin-reader"], ["account-admin"]][position]
            if position < 3
            else (["consultant"])
        )
    else:
        roles = ["account-admin"] if position == 0 else []
    closes = history.start + timedelta(days=CLOSING_DAY) if account == CLOSING else None
    if joined >= end or (closes is not None and joined >= closes - timedelta(days=7)):
        return

    def create() -> None:
        history.users[email] = led.create_user(
            email,
            account_id=history.accounts[account],
            actor=DEMO_ACTOR,
            roles=roles,
            timezone="Europe/Amsterdam",
            password=DEMO_PASSWORD if position == 0 else None,
            reason="New employee",
        )

    script.at(joined, create)

    def user() -> UUID:  # resolved when the action runs, after the user was created
        return history.users[email]

    def failed_login(at: datetime, why: str) -> Callable[[], Any]:
        return lambda: led.record_failed_login(user(), at=at, ip="198.51.100.23", reason_kind=why)

    if position == 0 and joined + timedelta(days=2) < end:  # a mistyped password
        script.at(
            joined + timedelta(days=2), failed_login(joined + timedelta(days=2), "wrong-password")
        )

    leaves = None
    if position in (4, 7) and rng.random() < 0.7:
        leaves = joined + timedelta(days=rng.uniform(60, 200))
        if leaves < end - timedelta(days=5):
            script.at(
                leaves,
                lambda: led.deactivate_user(user(), actor=DEMO_ACTOR, reason="Left the company"),
            )
            history.leavers.append(email)
            tries_again = leaves + timedelta(days=3)  # a leaver's old bookmark
            if tries_again < end:
                script.at(tries_again, failed_login(tries_again, "inactive"))
            if not history.erased and not in_consultancy and leaves + timedelta(days=30) < end:
                script.at(
                    leaves + timedelta(days=30),
                    lambda: led.erase_user(
                        user(), actor="demo:privacy-officer", reason="GDPR erasure request #2041"
                    ),
                )
                history.erased.append(email)
        else:
            leaves = None
    if in_consultancy and position == 5:  # a consultant who gains and later loses access
        script.at(
            joined + timedelta(days=1),
            lambda: led.revoke_role(
                user(), "consultant", actor=DEMO_ACTOR, reason="Starts on internal projects"
            ),
        )
        script.at(
            joined + timedelta(days=60),
            lambda: led.grant_role(
                user(), "consultant", actor=DEMO_ACTOR, reason="Assigned to client work (JIRA-311)"
            ),
        )
        script.at(
            joined + timedelta(days=200),
            lambda: led.revoke_role(
                user(), "consultant", actor=DEMO_ACTOR, reason="Moved to sales"
            ),
        )
    if not in_consultancy and position == 2:  # promoted to account admin
        script.at(
            joined + timedelta(days=rng.uniform(30, 90)),
            lambda: led.grant_role(
                user(), "account-admin", actor=DEMO_ACTOR, reason="Team lead (JIRA-12)"
            ),
        )
    if in_consultancy and position == 3:  # two weeks' read access for an audit
        script.at(
            joined + timedelta(days=20),
            lambda: led.grant_role(
                user(),
                "admin-reader",
                actor=DEMO_ACTOR,
                until=joined + timedelta(days=34),
                exception_approved_by="demo:ciso",
                reason="Quarterly audit support (CISO waiver W-7)",
            ),
        )

    # Logins: each person has a rhythm; some stop logging in (dormant) while staying active.
    mean_gap = rng.choice([1.5, 3, 7, 14, 30])
    dormant_from = None
    if rng.random() < 0.15 and leaves is None:
        dormant_from = joined + timedelta(days=rng.uniform(20, 120))
        history.dormant.append(email)
    last_possible = min(
        x for x in (leaves, dormant_from, end - timedelta(hours=1), closes) if x is not None
    ) - timedelta(minutes=10)

    def login(at: datetime, ip: str) -> Callable[[], Any]:
        return lambda: led.record_login(user(), at=at, ip=ip)

    moment = joined + timedelta(hours=rng.uniform(1, 30))
    while moment < last_possible:
        at = moment
        script.at(at, login(at, f"192.0.2.{rng.randint(1, 254)}"))
        script.at(at + timedelta(minutes=rng.uniform(1, 9)), lambda: led.record_last_seen(user()))
        moment += timedelta(days=rng.expovariate(1 / mean_gap), hours=rng.uniform(0, 10))


def _schedule_annotations(
    script: _Script,
    led: Ledger,
    history: DemoHistory,
    rng: random.Random,
    start: datetime,
    end: datetime,
) -> None:
    def annotate(account: str, **fields: Any) -> Callable[[], Any]:
        return lambda: led.add_annotation(history.accounts[account], **fields)

    holidays = []
    for year in {start.year, end.year}:
        holidays += [
            ("Christmas holidays", datetime(year, 12, 24, tzinfo=UTC), 3),
            ("King's Day", datetime(year, 4, 27, tzinfo=UTC), 1),
            ("New Year", datetime(year, 1, 1, tzinfo=UTC), 1),
        ]
    for name, _domain in CLIENTS:
        last = start + timedelta(days=CLOSING_DAY - 1) if name == CLOSING else end
        for content, first_day, days in holidays:
            announced = first_day - timedelta(days=14)
            if start <= announced < last:
                script.at(
                    announced,
                    annotate(
                        name,
                        content=content,
                        start=first_day,
                        end=first_day + timedelta(days=days),
                        source="Holiday calendar",
                        type="holiday",
                        actor=DEMO_ACTOR,
                    ),
                )
        for _ in range(2):
            when = start + timedelta(days=rng.uniform(60, 280), hours=rng.randint(0, 23))
            script.at(
                when,
                annotate(
                    name,
                    content="Battery inverter offline",
                    start=when,
                    end=when + timedelta(hours=rng.randint(1, 6)),
                    source="Monitoring",
                    type="alert",
                    belief_time=when + timedelta(minutes=5),
                    actor="demo:monitoring",
                ),
            )
