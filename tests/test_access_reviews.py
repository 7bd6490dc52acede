"""Access-review campaigns: a campaign snapshots the in-scope grants held at its start as items;
the named reviewer certifies or revokes each (a revocation takes the role away in the same
transaction), never about their own access, once, while the campaign is open; closing records
the outcome. Every fact is an event: queries answer `at=`, replay agrees, and the `review`
report and the read API show the evidence."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger import (
    Conflict,
    InactiveUser,
    Ledger,
    LedgerError,
    NotFound,
    PermissionDenied,
    ValidationError,
)
from ledger.audit import Audit
from ledger.domain.reviews import item_id, split_item_id
from ledger.unit_of_work import UnitOfWork
from projections import ReadModel
from tests.conftest import ADMIN
from tests.helpers import Clock, api_client, cli, event_names, one_line, stored_state

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DUE = START + timedelta(days=30)
PASSWORD = "review-pass-1"


@dataclass
class Platform:
    """Seita (a consultancy: root the admin, rita the reviewer, cora a consultant), Acme (its
    client: boss its account-admin, ann with two roles, pat with none, old deactivated, tim
    whose grant has ended) and Globex (gus its account-admin)."""

    led: Ledger
    clock: Clock
    accounts: dict[str, UUID] = field(default_factory=dict)
    users: dict[str, UUID] = field(default_factory=dict)

    def at(self, moment: datetime) -> None:
        self.clock.moment = moment


@pytest.fixture
def platform(url: str, acme: UUID) -> Iterator[Platform]:
    clock = Clock(START - timedelta(days=10))
    led = Ledger(url, clock=clock)
    world = Platform(led, clock)
    try:
        seita = led.create_account("Seita", actor=ADMIN, roles=["Consultancy"])
        led.set_consultancy(acme, seita, actor=ADMIN)
        globex = led.create_account("Globex", actor=ADMIN)
        world.accounts.update(seita=seita, acme=acme, globex=globex)
        people = {
            "root": (seita, ["admin"]),
            "rita": (seita, []),
            "cora": (seita, ["consultant"]),
            "boss": (acme, ["account-admin"]),
            "ann": (acme, ["admin-reader", "consultant"]),
            "pat": (acme, []),
            "old": (acme, ["account-admin"]),
            "tim": (acme, []),
            "gus": (globex, ["account-admin"]),
        }
        for name, (account, roles) in people.items():
            world.users[name] = led.create_user(
                f"{name}@{'seita' if account == seita else 'x'}.org",
                account_id=account,
                actor=ADMIN,
                roles=roles,
                password=PASSWORD,
            )
        led.deactivate_user(world.users["old"], actor=ADMIN)
        led.grant_role(world.users["tim"], "consultant", actor=ADMIN, until=START)
        world.at(START)
        yield world
    finally:
        led.close()


def email(world: Platform, name: str) -> str:
    return f"{name}@seita.org" if name in ("root", "rita", "cora") else f"{name}@x.org"


def start(world: Platform, name: str = "q1", **changes: Any) -> UUID:
    arguments: dict[str, Any] = {
        "scope": {"accounts": ["Acme", "Globex"]},
        "reviewer": "rita@seita.org",
        "due": DUE,
        "actor": ADMIN,
        "reason": "quarterly review",
    }
    arguments.update(changes)
    return world.led.start_review(name, **arguments)


def items_by_grant(rm: ReadModel, world: Platform, name: str = "q1") -> dict[tuple[str, str], str]:
    rm.catch_up()
    users = {user_id: user_name for user_name, user_id in world.users.items()}
    return {(users[item.user_id], item.role): item.id for item in rm.review_items(name)}


def test_a_campaign_end_to_end(platform: Platform, rm: ReadModel, url: str, tmp_path: Path) -> None:
    world, led = platform, platform.led
    start(world)
    items = items_by_grant(rm, world)
    # what was effectively held at the start, in scope: not old's (inactive), nor tim's (ended),
    # nor Seita's
    assert set(items) == {
        ("ann", "admin-reader"),
        ("ann", "consultant"),
        ("boss", "account-admin"),
        ("gus", "account-admin"),
    }
    assert sorted(items.values()) == ["q1#1", "q1#2", "q1#3", "q1#4"]
    world.at(START + timedelta(days=1))
    assert led.certify(
        items["boss", "account-admin"],
        reviewer=world.users["rita"],
        reason="team lead",
        actor=ADMIN,
    )
    world.at(START + timedelta(days=2))
    assert led.revoke_via_review(
        items["ann", "admin-reader"], reviewer="rita@seita.org", reason="not needed", actor=ADMIN
    )
    assert sorted(event_names(led)[-2:]) == ["ReviewItemRevoked", "RoleRevoked"]  # one save
    world.at(START + timedelta(days=3))
    assert led.close_review("q1", actor=ADMIN, reason="signed off")
    assert not led.close_review("q1", actor=ADMIN)  # closed already: nothing recorded
    rm.catch_up()

    ann = world.users["ann"]
    assert not rm.has_role(ann, "admin-reader")
    assert rm.has_role(
        ann, "admin-reader", at=START + timedelta(days=2) - timedelta(microseconds=1)
    )
    assert rm.has_role(ann, "consultant")
    revocation = rm.audit_log(ann).iloc[-1]
    assert revocation["event"] == "RoleRevoked"
    assert (
        revocation["reason"]
        == f"access review 'q1', item {items['ann', 'admin-reader']}: not needed"
    )

    final = rm.review("q1")
    assert final is not None
    assert (final.status, final.items, final.certified, final.revoked, final.undecided) == (
        "closed",
        4,
        1,
        1,
        2,
    )
    assert not final.overdue and final.closed_by == ADMIN
    assert rm.reviews()[0].name == "q1" and final.reviewer_id == world.users["rita"]
    # as it stood before the revocation, and before the start
    earlier = rm.review("q1", at=START + timedelta(days=1, hours=1))
    assert earlier is not None
    assert (earlier.status, earlier.certified, earlier.revoked, earlier.undecided) == (
        "open",
        1,
        0,
        3,
    )
    assert rm.review("q1", at=START - timedelta(seconds=1)) is None
    assert rm.reviews(at=START - timedelta(seconds=1)) == []
    assert rm.review_items("q1", at=START - timedelta(seconds=1)) == []
    decided = {item.id: item for item in rm.review_items("q1", at=START + timedelta(days=1))}
    boss_item = decided[items["boss", "account-admin"]]
    assert boss_item.decision == "certified" and boss_item.reason == "team lead"
    assert boss_item.decided_at == START + timedelta(days=1)
    assert boss_item.reviewer_id == world.users["rita"] and boss_item.decided_by == ADMIN
    assert decided[items["ann", "admin-reader"]].decision is None  # not yet, at that instant
    assert [i.id for i in rm.review_decisions(ann)] == sorted(
        [items["ann", "admin-reader"], items["ann", "consultant"]]
    )
    overdue = rm.review("q1", at=DUE + timedelta(days=1))
    assert overdue is not None and overdue.status == "closed" and not overdue.overdue

    # replay agrees with the live read models, and the chain verifies
    with Audit(url) as audit:
        position, differences = audit.check()
        assert differences == [] and position == led.recorder.max_notification_id()
        assert audit.verify().ok
        # a point-in-time replay answers as the live read models do at that instant
        moment = START + timedelta(days=1, hours=1)
        audit.replay(moment, tmp_path / "replay.db")
    replayed = ReadModel(f"sqlite:///{tmp_path / 'replay.db'}")
    try:
        assert replayed.review("q1", at=moment) == rm.review("q1", at=moment)
        assert replayed.review("q1", at=moment).certified == 1  # type: ignore[union-attr]
        assert replayed.review_items("q1") == rm.review_items("q1", at=moment)
    finally:
        replayed.close()


def test_a_campaign_by_roles_and_one_left_open_past_its_due_time(
    platform: Platform, rm: ReadModel
) -> None:
    world = platform
    start(world, "privileged", scope={"roles": ["consultant", "admin"]}, reviewer="gus@x.org")
    items = items_by_grant(rm, world, "privileged")
    assert set(items) == {("root", "admin"), ("cora", "consultant"), ("ann", "consultant")}
    found = rm.review("privileged", at=DUE + timedelta(seconds=1))
    assert found is not None and found.status == "overdue" and found.overdue
    world.at(DUE + timedelta(days=1))
    assert world.led.close_review("privileged", actor=ADMIN)
    rm.catch_up()
    closed = rm.review("privileged")
    assert closed is not None and closed.overdue and closed.undecided == 3


def test_self_review_and_every_bad_decision_are_refused_recording_nothing(
    platform: Platform, rm: ReadModel
) -> None:
    world, led = platform, platform.led
    start(world, scope={"accounts": ["Acme"]}, reviewer="boss@x.org")
    items = items_by_grant(rm, world)
    own, other = items["boss", "account-admin"], items["ann", "consultant"]
    led.certify(items["ann", "admin-reader"], reviewer="boss@x.org", reason="ok", actor=ADMIN)
    before = stored_state(led)
    refused: list[tuple[type[LedgerError], str, dict[str, Any]]] = [
        (Conflict, "about their own access", {"item": own}),
        (Conflict, "decided already", {"item": items["ann", "admin-reader"]}),
        (Conflict, "not user", {"item": other, "reviewer": "root@seita.org"}),
        (NotFound, "'q1#9' not found", {"item": "q1#9"}),
        (NotFound, "campaign 'q2' not found", {"item": "q2#1"}),
        (
            NotFound,
            "reviewer 'nobody@x.org' not found",
            {"item": other, "reviewer": "nobody@x.org"},
        ),
        (ValidationError, "invalid item 'q1'", {"item": "q1"}),
        (ValidationError, "invalid item '#1'", {"item": "#1"}),
        (ValidationError, "invalid item 'q1#0'", {"item": "q1#0"}),
        (ValidationError, "invalid item 'q1#-1'", {"item": "q1#-1"}),
        (ValidationError, "invalid item 'q1#1x'", {"item": "q1#1x"}),
        (ValidationError, "invalid item 'q1#\u0661'", {"item": "q1#\u0661"}),  # a non-ASCII digit
        (ValidationError, "no campaign has an item", {"item": "q1#" + "9" * 40}),
        (ValidationError, "invalid item None", {"item": None}),
        (ValidationError, "invalid item 7", {"item": 7}),
        (ValidationError, "campaign name", {"item": "q\x001#1"}),
        (ValidationError, "campaign name", {"item": "x" * 81 + "#1"}),
        (ValidationError, "needs a reason", {"item": other, "reason": None}),
        (ValidationError, "reason", {"item": other, "reason": "x" * 501}),
    ]
    for error, message, changed in refused:
        for decide in (led.certify, led.revoke_via_review):
            arguments: dict[str, Any] = {
                "reviewer": "boss@x.org",
                "reason": "because",
                "actor": ADMIN,
                **changed,
            }
            item = arguments.pop("item")
            with pytest.raises(error) as rejected:
                decide(item, **arguments)
            assert message in str(rejected.value), (message, str(rejected.value))
            assert "\n" not in str(rejected.value)
            assert stored_state(led) == before, message
    led.deactivate_user("boss@x.org", actor=ADMIN)
    before = stored_state(led)
    with pytest.raises(InactiveUser, match=r"reviewer user 'boss@x\.org' is inactive"):
        led.certify(other, reviewer="boss@x.org", reason="ok", actor=ADMIN)
    assert stored_state(led) == before
    led.reactivate_user("boss@x.org", actor=ADMIN)
    led.close_review("q1", actor=ADMIN)
    before = stored_state(led)
    with pytest.raises(Conflict, match="'q1' is closed: item 'q1#"):
        led.revoke_via_review(other, reviewer="boss@x.org", reason="late", actor=ADMIN)
    assert stored_state(led) == before
    rm.catch_up()
    assert rm.has_role(world.users["ann"], "consultant")


def test_bad_campaign_starts_are_refused_recording_nothing(platform: Platform) -> None:
    world, led = platform, platform.led
    start(world, "taken")
    led.create_user("gone@x.org", account_id=world.accounts["acme"], actor=ADMIN)
    led.erase_user("gone@x.org", actor=ADMIN, reason="GDPR")
    closed = led.create_account("Closed", actor=ADMIN)
    led.close_account(closed, actor=ADMIN)
    before = stored_state(led)
    refused: list[tuple[type[LedgerError], str, dict[str, Any]]] = [
        (Conflict, "'taken' exists already", {"name": "taken"}),
        (ValidationError, "campaign name", {"name": " "}),
        (ValidationError, "campaign name", {"name": "q\x07"}),
        (ValidationError, "campaign name", {"name": "q" * 81}),
        (ValidationError, "invalid due", {"due": START}),  # not after the command
        (ValidationError, "invalid due", {"due": START - timedelta(days=1)}),
        (ValidationError, "naive", {"due": datetime(2027, 1, 1)}),
        (ValidationError, "invalid due", {"due": "soon"}),
        (ValidationError, "invalid due", {"due": float("nan")}),
        (ValidationError, "invalid scope", {"scope": ["Acme"]}),
        (ValidationError, "invalid scope", {"scope": {}}),
        (ValidationError, "invalid scope", {"scope": {"accounts": ["Acme"], "roles": ["admin"]}}),
        (ValidationError, "invalid scope 'users'", {"scope": {"users": ["ann@x.org"]}}),
        (ValidationError, "invalid scope 'Acme'", {"scope": {"accounts": "Acme"}}),
        (ValidationError, "give 1 to 1000 roles, not 0", {"scope": {"roles": []}}),
        (ValidationError, "not 1001", {"scope": {"roles": [f"r{n}" for n in range(1001)]}}),
        (ValidationError, "role name", {"scope": {"roles": ["ad\x00min"]}}),
        (NotFound, "role 'auditor' is not defined", {"scope": {"roles": ["auditor"]}}),
        (NotFound, "'Nowhere' not found", {"scope": {"accounts": ["Nowhere"]}}),
        (Conflict, "is closed", {"scope": {"accounts": [str(closed)]}}),
        (NotFound, "reviewer 'who@x.org' not found", {"reviewer": "who@x.org"}),
        (NotFound, "not found", {"reviewer": str(world.accounts["acme"])}),  # not a user
        (InactiveUser, "reviewer user 'old@x.org' is inactive", {"reviewer": "old@x.org"}),
    ]
    for error, message, changed in refused:
        name = changed.pop("name", "fresh")
        with pytest.raises(error) as rejected:
            start(world, name, **changed)
        assert message in str(rejected.value), (message, str(rejected.value))
        assert stored_state(led) == before, message


def test_revoking_a_grant_that_ended_records_the_decision_alone(
    platform: Platform, rm: ReadModel
) -> None:
    world, led = platform, platform.led
    led.grant_role("pat@x.org", "consultant", actor=ADMIN, until=START + timedelta(days=2))
    start(world, scope={"accounts": ["Acme"]})
    items = items_by_grant(rm, world)
    world.at(START + timedelta(days=3))  # pat's grant has ended by itself; ann loses hers
    led.revoke_role("ann@x.org", "consultant", actor=ADMIN, reason="moved to sales")
    before = stored_state(led)
    with pytest.raises(Conflict, match="no longer holds 'consultant'"):
        led.certify(items["pat", "consultant"], reviewer="rita@seita.org", reason="ok", actor=ADMIN)
    assert stored_state(led) == before
    for user in ("pat", "ann"):
        assert led.revoke_via_review(
            items[user, "consultant"], reviewer="rita@seita.org", reason="gone", actor=ADMIN
        )
        assert event_names(led)[-1] == "ReviewItemRevoked"  # no RoleRevoked with it
    rm.catch_up()
    decided = {item.id: item for item in rm.review_items("q1")}
    assert decided[items["pat", "consultant"]].role_revoked is False
    assert decided[items["ann", "consultant"]].decision == "revoked"


def test_a_role_granted_again_after_the_start_is_the_one_revoked(
    platform: Platform, rm: ReadModel
) -> None:
    world, led = platform, platform.led
    start(world, scope={"roles": ["account-admin"]})
    items = items_by_grant(rm, world)
    led.revoke_role("gus@x.org", "account-admin", actor=ADMIN)
    led.grant_role("gus@x.org", "account-admin", actor=ADMIN)
    world.at(START + timedelta(hours=1))
    led.revoke_via_review(
        items["gus", "account-admin"], reviewer="rita@seita.org", reason="no", actor=ADMIN
    )
    rm.catch_up()
    assert not rm.has_role(world.users["gus"], "account-admin")


def test_command_ids_and_two_writers_deciding_the_same_item(
    platform: Platform, rm: ReadModel, url: str
) -> None:
    world, led = platform, platform.led
    first = start(world, command_id="review-1")
    assert start(world, command_id="review-1") == first  # recorded once
    with pytest.raises(Conflict, match="review-1"):
        start(world, "other", command_id="review-1")
    items = items_by_grant(rm, world)
    item = items["gus", "account-admin"]
    outcomes: list[object] = []
    barrier = threading.Barrier(2, timeout=120)

    def decide(kind: str) -> None:
        writer = Ledger(url)
        try:
            barrier.wait()
            if kind == "certify":
                outcomes.append(
                    writer.certify(item, reviewer="rita@seita.org", reason="ok", actor=ADMIN)
                )
            else:
                outcomes.append(
                    writer.revoke_via_review(
                        item, reviewer="rita@seita.org", reason="no", actor=ADMIN
                    )
                )
        except LedgerError as error:
            outcomes.append(error)
        finally:
            writer.close()

    threads = [threading.Thread(target=decide, args=(kind,)) for kind in ("certify", "revoke")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count(True) == 1, outcomes
    refused = [o for o in outcomes if o is not True]
    assert len(refused) == 1 and isinstance(refused[0], Conflict)
    assert "decided already" in str(refused[0])
    rm.catch_up()
    decided = next(i for i in rm.review_items("q1") if i.id == item)
    assert rm.has_role(world.users["gus"], "account-admin") == (decided.decision == "certified")
    decisions = [n for n in event_names(led) if n.startswith("ReviewItem")]
    assert len(decisions) == 1


def test_two_writers_starting_the_same_campaign_record_it_once(
    platform: Platform, url: str
) -> None:
    outcomes: list[object] = []
    barrier = threading.Barrier(2, timeout=120)

    def begin(reviewer: str) -> None:
        writer = Ledger(url)
        try:
            barrier.wait()
            outcomes.append(
                writer.start_review(
                    "race",
                    scope={"roles": ["admin"]},
                    reviewer=reviewer,
                    due=datetime(2099, 1, 1, tzinfo=UTC),
                    actor=ADMIN,
                )
            )
        except LedgerError as error:
            outcomes.append(error)
        finally:
            writer.close()

    threads = [threading.Thread(target=begin, args=(r,)) for r in ("rita@seita.org", "gus@x.org")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    started = [o for o in outcomes if isinstance(o, UUID)]
    refused = [o for o in outcomes if isinstance(o, LedgerError)]
    assert len(started) == 1 and len(refused) == 1, outcomes
    assert "'race' exists already" in str(refused[0])
    assert event_names(platform.led).count("ReviewStarted") == 1


def test_the_command_line_and_apply(platform: Platform, url: str, tmp_path: Path) -> None:
    led = platform.led
    base = ("--db", url, "--actor", "cli:auditor")
    started = cli(
        *base,
        "--json",
        "review",
        "start",
        "cli-q",
        "--account",
        "Acme",
        "--reviewer",
        "rita@seita.org",
        "--due",
        "2099-01-01",
    )
    assert json.loads(started.stdout)["recorded"] is True
    listed = json.loads(cli(*base, "--json", "review", "items", "cli-q").stdout)
    assert {(row["email"], row["role"]) for row in listed} == {
        ("ann@x.org", "admin-reader"),
        ("ann@x.org", "consultant"),
        ("boss@x.org", "account-admin"),
    }
    assert all(set(row) >= {"id", "user", "role", "decision"} for row in listed)
    by_grant = {(row["email"], row["role"]): row["id"] for row in listed}
    missing_reason = cli(
        *base,
        "review",
        "certify",
        by_grant["boss@x.org", "account-admin"],
        "--reviewer",
        "rita@seita.org",
        code=1,
    )
    assert one_line(missing_reason) == "error: --reason (a review decision needs one) is required"
    cli(
        *base,
        "--reason",
        "lead",
        "review",
        "certify",
        by_grant["boss@x.org", "account-admin"],
        "--reviewer",
        "rita@seita.org",
    )
    cli(
        *base,
        "--reason",
        "no",
        "review",
        "revoke",
        by_grant["ann@x.org", "consultant"],
        "--reviewer",
        "rita@seita.org",
    )
    self_review = cli(
        *base,
        "--reason",
        "x",
        "review",
        "certify",
        by_grant["ann@x.org", "admin-reader"],
        "--reviewer",
        "ann@x.org",
        code=1,
    )
    assert "not user" in one_line(self_review)
    both = cli(
        *base,
        "review",
        "start",
        "z",
        "--account",
        "Acme",
        "--role",
        "admin",
        "--reviewer",
        "rita@seita.org",
        "--due",
        "2099-01-01",
        code=1,
    )
    assert one_line(both) == "error: invalid scope: give --account (repeatable) or --role, not both"
    past = cli(
        *base,
        "review",
        "start",
        "z",
        "--role",
        "admin",
        "--reviewer",
        "rita@seita.org",
        "--due",
        "2020-01-01",
        code=1,
    )
    assert one_line(past).startswith("error: invalid due 2020-01-01T00:00:00+00:00")
    cli(*base, "review", "close", "cli-q")
    shown = json.loads(cli(*base, "--json", "review", "show", "cli-q").stdout)
    assert (shown["status"], shown["certified"], shown["revoked"], shown["undecided"]) == (
        "closed",
        1,
        1,
        1,
    )
    assert len(shown["item_list"]) == 3
    unknown = cli(*base, "review", "show", "nope", code=1)
    assert one_line(unknown) == "error: review campaign 'nope' not found (not started)"
    assert json.loads(cli(*base, "--json", "review", "list").stdout)[0]["name"] == "cli-q"

    lines = [
        {
            "command": "start_review",
            "name": "batch-q",
            "scope": {"roles": ["admin"]},
            "reviewer": "gus@x.org",
            "due": "2099-01-01T00:00:00+00:00",
            "command_id": "b-1",
        },
        {
            "command": "certify",
            "item": "batch-q#1",
            "reviewer": "gus@x.org",
            "reason": "still admin",
            "command_id": "b-2",
        },
        {"command": "close_review", "name": "batch-q", "command_id": "b-3"},
        {
            "command": "start_review",
            "name": "batch-2",
            "scope": {"roles": ["consultant"]},
            "reviewer": "gus@x.org",
            "due": "2099-01-01T00:00:00+00:00",
            "command_id": "b-4",
        },
        {
            "command": "revoke_via_review",
            "item": "batch-2#1",
            "reviewer": "gus@x.org",
            "reason": "left",
            "command_id": "b-5",
        },
    ]
    batch = tmp_path / "reviews.jsonl"
    batch.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    cli(*base, "apply", str(batch))
    recorded = led.recorder.max_notification_id()
    cli(*base, "apply", str(batch))  # re-run: nothing changes
    assert led.recorder.max_notification_id() == recorded
    finished = json.loads(cli(*base, "--json", "review", "show", "batch-q").stdout)
    assert (finished["status"], finished["certified"], finished["items"]) == ("closed", 1, 1)
    revoked = json.loads(cli(*base, "--json", "review", "items", "batch-2").stdout)
    assert [(row["email"], row["decision"]) for row in revoked] == [("cora@seita.org", "revoked")]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps({"command": "certify", "item": "batch-2#2", "reviewer": "gus@x.org"}) + "\n"
    )
    result = cli(*base, "apply", str(bad), code=1)
    assert "needs a reason" in result.stdout + result.stderr
    assert led.recorder.max_notification_id() == recorded


def test_the_review_report_holds_exactly_the_evidence(
    platform: Platform, rm: ReadModel, url: str
) -> None:
    world, led = platform, platform.led
    start(world, scope={"accounts": ["Globex"]}, reviewer="boss@x.org")
    start(world, "q2", scope={"roles": ["admin-reader", "admin"]})
    items = items_by_grant(rm, world, "q2")
    world.at(START + timedelta(hours=5))
    led.certify(items["root", "admin"], reviewer="rita@seita.org", reason="CTO", actor="cli:lead")
    led.revoke_via_review(
        items["ann", "admin-reader"], reviewer="rita@seita.org", reason="audit over", actor=ADMIN
    )
    with Audit(url) as audit:
        text = audit.render(["review"], "csv", campaign="q2", at=START + timedelta(days=1))
        frame = audit.report("review", at=START + timedelta(days=1))
    rita, ann, root = (str(world.users[n]) for n in ("rita", "ann", "root"))
    header = (
        "campaign,status,due,completion,item,user_id,user,account,role,decision,decided_at,"
        "reviewer_id,reviewer,decided_by,reason,role_revoked"
    )
    row = {
        items["ann", "admin-reader"]: (
            f"q2,open,2026-04-01T09:00:00+0000,2 of 2 decided,{items['ann', 'admin-reader']},"
            f"{ann},ann@x.org,Acme,admin-reader,revoked,2026-03-02T14:00:00+0000,{rita},"
            f"rita@seita.org,{ADMIN},audit over,True"
        ),
        items["root", "admin"]: (
            f"q2,open,2026-04-01T09:00:00+0000,2 of 2 decided,{items['root', 'admin']},"
            f"{root},root@seita.org,Seita,admin,certified,2026-03-02T14:00:00+0000,{rita},"
            "rita@seita.org,cli:lead,CTO,"
        ),
    }
    stamp = [line for line in text.splitlines() if line.startswith("# ")]
    assert stamp[0].startswith("# integrity chain verified: ")  # the evidence comes first
    rows = [line for line in text.splitlines() if not line.startswith("# ")]
    assert rows == [header, *(row[item] for item in sorted(row))]
    assert list(frame["campaign"]) == ["q1", "q2", "q2"]  # every campaign, undecided included
    assert (
        frame["decision"].iloc[0] == "undecided" and frame["completion"].iloc[0] == "0 of 1 decided"
    )
    with Audit(url) as audit:
        early = audit.report("review", campaign="q2", at=START + timedelta(hours=1))
        assert list(early["decision"]) == ["undecided", "undecided"]
        with pytest.raises(NotFound, match="'q3' not found"):
            audit.report("review", campaign="q3")
        with pytest.raises(ValidationError, match="campaign"):
            audit.report("review", campaign="\x1b[31m")
        page = audit.render(["review"], "html", campaign="q2")
    assert "Access-review campaigns (2)" in page and "audit over" in page


@given(
    name=st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=80).filter(
        lambda text: text.strip() == text and text != ""
    ),
    number=st.integers(min_value=1, max_value=999_999_999),
)
def test_an_item_id_names_its_campaign_and_number_whatever_the_name_holds(
    name: str, number: int
) -> None:
    assert split_item_id(item_id(name, number)) == (name, number)  # '#' in a name included


@dataclass
class Api:
    client: Any
    tokens: dict[str, str]

    def get(self, path: str, caller: str, **params: Any) -> Any:
        return self.client.get(path, headers={"Authorization": self.tokens[caller]}, params=params)


@pytest.fixture
def api(platform: Platform, url: str) -> Iterator[Api]:
    world, led = platform, platform.led
    led.grant_role("pat@x.org", "admin-reader", actor=ADMIN, until=datetime(2099, 1, 1, tzinfo=UTC))
    start(world, scope={"accounts": ["Acme", "Globex"]})
    start(world, "globex-only", scope={"accounts": ["Globex"]}, reviewer="boss@x.org")
    world.at(START + timedelta(hours=1))
    led.certify("globex-only#1", reviewer="boss@x.org", reason="ok", actor=ADMIN)
    with api_client(url, "192.0.2.10") as client:
        tokens = {}
        for name in ("root", "boss", "cora", "gus", "pat", "rita", "ann"):
            response = client.post(
                "/api/requestAuthToken", json={"email": email(world, name), "password": PASSWORD}
            )
            assert response.status_code == 200, response.text
            tokens[name] = response.json()["auth_token"]
        yield Api(client, tokens)


def test_the_read_api_shows_each_caller_only_the_items_they_may_read(
    api: Api, platform: Platform
) -> None:
    world = platform
    acme, globex = str(world.accounts["acme"]), str(world.accounts["globex"])
    # (caller, campaigns listed, accounts of the items of q1 they see; None: 403)
    matrix: list[tuple[str, list[str] | None, set[str] | None]] = [
        ("root", ["globex-only", "q1"], {acme, globex}),  # admin
        ("pat", ["globex-only", "q1"], {acme, globex}),  # admin-reader (time-limited)
        ("boss", ["q1"], {acme}),  # Acme's account-admin
        ("cora", ["q1"], {acme}),  # consultant of Acme's consultancy
        ("gus", ["globex-only", "q1"], {globex}),  # Globex's account-admin
        ("ann", ["globex-only", "q1"], {acme, globex}),  # admin-reader, reviewed herself
        ("rita", None, None),  # the reviewer, a plain user: no audit logs to read
    ]
    for caller, listed, accounts in matrix:
        response = api.get("/api/v3_0/reviews", caller)
        if listed is None:
            assert response.status_code == 403, caller
            assert response.json()["message"] == "you may not read access reviews"
            assert api.get("/api/v3_0/reviews/q1", caller).status_code == 403
            continue
        assert response.status_code == 200, (caller, response.text)
        assert [r["name"] for r in response.json()] == listed, caller
        detail = api.get("/api/v3_0/reviews/q1", caller).json()
        assert {i["account_id"] for i in detail["item_list"]} == accounts, caller
        assert detail["items"] == len(detail["item_list"])
        assert set(detail["scope"]) == accounts, caller
        if accounts == {globex}:
            assert detail["reviewer_id"] is None  # rita is of Seita, which gus may not read
    assert api.get("/api/v3_0/reviews/globex-only", "boss").status_code == 403
    assert api.get("/api/v3_0/reviews/nope", "root").status_code == 404
    misspelt = api.get("/api/v3_0/reviews", "root", per_pag=5)
    assert misspelt.status_code == 422 and "per_pag" in misspelt.json()["message"]
    assert api.get("/api/v3_0/reviews/q1", "root", at="2026-03-01T00:00:00Z").status_code == 404
    earlier = api.get("/api/v3_0/reviews/globex-only", "root", at="2026-03-02T09:30:00Z").json()
    assert earlier["certified"] == 0 and earlier["item_list"][0]["decision"] is None
    later = api.get("/api/v3_0/reviews/globex-only", "gus").json()
    assert later["item_list"][0]["decision"] == "certified"
    gus = world.users["gus"]
    own = api.get(f"/api/v3_0/users/{gus}/reviews", "gus").json()
    assert [(i["campaign"], i["decision"]) for i in own] == [
        ("globex-only", "certified"),
        ("q1", None),
    ]
    assert api.get(f"/api/v3_0/users/{gus}/reviews", "boss").status_code == 403
    assert api.get(f"/api/v3_0/users/{gus}/reviews", "root").status_code == 200


def test_the_read_api_shows_grant_ends(api: Api, platform: Platform) -> None:
    pat = platform.users["pat"]
    shown = api.get(f"/api/v3_0/users/{pat}", "root").json()
    assert shown["role_ends"] == {"admin-reader": "2099-01-01T00:00:00Z"}
    roles = api.get(f"/api/v3_0/users/{pat}/roles", "root").json()
    assert roles["roles"] == ["admin-reader"] and roles["ends"] == {
        "admin-reader": "2099-01-01T00:00:00Z"
    }
    listed = api.get("/api/v3_0/users", "root").json()
    assert all(user["role_ends"] is None for user in listed)
    globex = platform.accounts["globex"]
    platform.led.grant_account_role(
        globex, "Consultancy", actor=ADMIN, until=datetime(2098, 6, 1, tzinfo=UTC)
    )
    account = api.get(f"/api/v3_0/accounts/{globex}", "gus").json()
    assert account["account_roles"] == ["Consultancy"]
    assert account["account_role_ends"] == {"Consultancy": "2098-06-01T00:00:00Z"}


def test_with_as_user_only_the_reviewer_decides_and_only_an_admin_runs_campaigns(
    platform: Platform, rm: ReadModel
) -> None:
    """Review commands given `as_user`: a decision is the reviewer's own (an admin acting as
    themself is refused, not stood in for), starting and closing a campaign an admin's; each
    refusal journalled once, the campaign unchanged."""
    world, led = platform, platform.led
    start(world, scope={"accounts": ["Acme"]})
    items = items_by_grant(rm, world)
    item = items["boss", "account-admin"]

    def denials() -> int:
        return sum(1 for name in event_names(led) if name == "AccessDenied")

    refused: list[tuple[str, dict[str, Any], str]] = [
        ("certify", {"item": item, "reviewer": "rita@seita.org"}, "root@seita.org"),
        ("revoke_via_review", {"item": item, "reviewer": "rita@seita.org"}, "boss@x.org"),
        (
            "start_review",
            {
                "name": "q2",
                "scope": {"roles": ["consultant"]},
                "reviewer": "rita@seita.org",
                "due": DUE,
            },
            "rita@seita.org",
        ),
        ("close_review", {"name": "q1"}, "rita@seita.org"),
    ]
    for command, arguments, as_user in refused:
        before = denials()
        extra = {"reason": "as asked"} if command in ("certify", "revoke_via_review") else {}
        with pytest.raises(PermissionDenied, match=f"may not {command}"):
            getattr(led, command)(**arguments, **extra, actor=ADMIN, as_user=as_user)
        assert denials() == before + 1, command
    rm.catch_up()
    assert [i.decision for i in rm.review_items("q1")] == [None] * len(items)
    assert led.certify(
        item, reviewer="rita@seita.org", reason="team lead", actor=ADMIN, as_user="rita@seita.org"
    )
    assert led.close_review("q1", actor=ADMIN, as_user="root@seita.org")


def test_a_refusal_rests_on_one_moment_even_when_another_writer_commits_between_two_reads(
    platform: Platform, rm: ReadModel, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The certify reads the campaign, then the user; the other reviewer's revocation commits
    between the two reads. Refused on that mixed view ("no longer holds"), it must run again
    and be refused for what is true at one moment: decided already."""
    world = platform
    start(world)
    item = items_by_grant(rm, world)["gus", "account-admin"]
    certifier = Ledger(url)
    real_fetch = UnitOfWork._fetch
    interleaved: list[bool] = []

    def fetch_then_let_the_other_commit(self: UnitOfWork, aggregate_id: Any, what: str) -> Any:
        found = real_fetch(self, aggregate_id, what)
        if not interleaved:
            interleaved.append(True)
            other = Ledger(url)
            try:
                other.revoke_via_review(item, reviewer="rita@seita.org", reason="no", actor=ADMIN)
            finally:
                other.close()
        return found

    monkeypatch.setattr(UnitOfWork, "_fetch", fetch_then_let_the_other_commit)
    try:
        with pytest.raises(Conflict, match="decided already"):
            certifier.certify(item, reviewer="rita@seita.org", reason="ok", actor=ADMIN)
    finally:
        certifier.close()
    assert interleaved
