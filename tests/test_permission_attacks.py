"""Attacks on permission-checked writes and access reviews that an outside review found, each
kept as a test: a consultancy's account-admin taking over its consultant, a self-approved
separation-of-duties exception, a caller naming themself the reviewer, a denial that did not
say which item, an `apply` line opting out of `--as-user`, a campaign whose name holds a
slash, and an inactive user's access certified."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote
from uuid import UUID

import pytest

from ledger import Conflict, Ledger, PermissionDenied, ValidationError
from ledger.audit import Audit
from projections import ReadModel
from tests.conftest import ADMIN
from tests.helpers import api_client, cli, event_names, stored_state

PASSWORD = "correct horse battery"


@pytest.fixture
def world(led: Ledger, acme: UUID) -> dict[str, UUID]:
    """Cons (the consultancy of Client): consaa its account-admin, con its consultant;
    Client: aa its account-admin, plain; Plat: root the admin, rita a plain reviewer."""
    led.define_role("payments", actor=ADMIN)
    led.define_role("approver", actor=ADMIN)
    led.define_sod_rule("pay-vs-approve", ["payments", "approver"], actor=ADMIN)
    plat = led.create_account("Plat", actor=ADMIN)
    cons = led.create_account("Cons", actor=ADMIN)
    client = led.create_account("Client", actor=ADMIN, consultancy_account_id=cons)
    people = {
        "root": (plat, ["admin"]),
        "rita": (plat, []),
        "consaa": (cons, ["account-admin"]),
        "con": (cons, ["consultant"]),
        "aa": (client, ["account-admin"]),
        "plain": (client, ["payments"]),
    }
    ids = {"Plat": plat, "Cons": cons, "Client": client}
    for name, (account, roles) in people.items():
        ids[name] = led.create_user(
            f"{name}@x.org", account_id=account, actor=ADMIN, roles=roles, password=PASSWORD
        )
    return ids


def denials(led: Ledger) -> int:
    return event_names(led).count("AccessDenied")


def test_an_account_admin_cannot_take_over_a_consultant_of_their_account(
    led: Ledger, world: dict[str, UUID]
) -> None:
    con = world["con"]
    attempts = [
        lambda: led.set_password(con, "hijacked password", actor=ADMIN, as_user="consaa@x.org"),
        lambda: led.update_user(con, email="mine@x.org", actor=ADMIN, as_user="consaa@x.org"),
        lambda: led.deactivate_user(con, actor=ADMIN, as_user="consaa@x.org"),
    ]
    for n, attempt in enumerate(attempts, start=1):
        with pytest.raises(PermissionDenied, match="rule privileged-target"):
            attempt()
        assert denials(led) == n
    assert led.verify_password(con, PASSWORD)
    rm = ReadModel(led.url)
    try:
        rm.catch_up()
        kept = rm.get_user(con)
    finally:
        rm.close()
    assert kept is not None and kept.email == "con@x.org" and kept.active
    # a plain member of the consultancy is still theirs to manage
    member = led.create_user("member@x.org", account_id=world["Cons"], actor=ADMIN)
    assert led.deactivate_user(member, actor=ADMIN, as_user="consaa@x.org")


def test_a_grantor_cannot_approve_their_own_exception(led: Ledger, world: dict[str, UUID]) -> None:
    plain = world["plain"]
    before = stored_state(led)
    with pytest.raises(ValidationError, match="someone other than the one who grants"):
        led.grant_role(
            plain,
            "approver",
            actor=ADMIN,
            reason="I approve",
            exception_approved_by="aa@x.org",
            as_user="aa@x.org",
        )
    assert stored_state(led) == before  # a bad argument, not a refusal: nothing journalled
    with pytest.raises(PermissionDenied, match="rule admin-exception"):  # nor name an admin
        led.grant_role(
            plain,
            "approver",
            actor=ADMIN,
            reason="the boss said so",
            exception_approved_by="root@x.org",
            as_user="aa@x.org",
        )
    assert denials(led) == 1
    with pytest.raises(ValidationError, match="someone other than the one who grants"):
        led.grant_role(
            plain,
            "approver",
            actor=ADMIN,
            reason="I approve",
            exception_approved_by="root@x.org",
            as_user="root@x.org",
        )
    assert "approver" not in led_roles(led, plain)
    assert led.grant_role(
        plain,
        "approver",
        actor=ADMIN,
        reason="quarter close",
        exception_approved_by="rita@x.org",
        as_user="root@x.org",
    )


def led_roles(led: Ledger, user: UUID) -> set[str]:
    rm = ReadModel(led.url)
    try:
        rm.catch_up()
        return rm.roles(user, effective=False)
    finally:
        rm.close()


def test_a_caller_naming_themself_the_reviewer_is_denied_and_journalled_with_the_item(
    led: Ledger, world: dict[str, UUID], url: str
) -> None:
    led.start_review(
        "Q1",
        scope={"accounts": ["Client"]},
        reviewer="rita@x.org",
        due=datetime.now(UTC) + timedelta(days=30),
        actor=ADMIN,
    )
    for command in (led.certify, led.revoke_via_review):
        with pytest.raises(PermissionDenied, match=r"on Q1#1: .*\(rule not-reviewer\)"):
            command("Q1#1", reviewer="aa@x.org", reason="mine now", actor=ADMIN, as_user="aa@x.org")
    assert denials(led) == 2
    with Audit(url) as audit:
        frame = audit.report("denied")
    assert list(frame["command"]) == ["certify", "revoke_via_review"]
    assert all("Q1#1" in str(targets) for targets in frame["targets"])
    # a wrong reviewer without as_user is the domain's Conflict, which names no reviewer
    with pytest.raises(Conflict, match="for the campaign's reviewer to decide") as refused:
        led.certify("Q1#1", reviewer="aa@x.org", reason="x", actor=ADMIN)
    assert str(world["rita"]) not in str(refused.value)
    assert led.certify(
        "Q1#1", reviewer="rita@x.org", reason="ok", actor=ADMIN, as_user="rita@x.org"
    )


def test_an_apply_line_cannot_opt_out_of_as_user(
    led: Ledger, world: dict[str, UUID], url: str, tmp_path: Path
) -> None:
    lines = [
        {"command": "grant_role", "user": "plain@x.org", "role": "admin", "as_user": None},
        {"command": "grant_role", "user": "plain@x.org", "role": "admin", "as_user": "root@x.org"},
        {"command": "grant_role", "user": "plain@x.org", "role": "admin"},
    ]
    batch = tmp_path / "escalate.jsonl"
    batch.write_text("".join(json.dumps(line) + "\n" for line in lines))
    done = cli("--db", url, "--as-user", "aa@x.org", "apply", str(batch), code=1)
    assert "applied 0, unchanged 0, rejected 3" in done.stdout + done.stderr
    assert "line 1: " in done.stdout + done.stderr and "--as-user" in done.stdout + done.stderr
    assert "admin" not in led_roles(led, world["plain"])
    assert denials(led) == 1  # the third line, checked as aa


def test_a_campaign_whose_name_holds_a_slash_is_readable(
    led: Ledger, world: dict[str, UUID], url: str, rm: ReadModel
) -> None:
    led.start_review(
        "2026/Q1",
        scope={"roles": ["consultant"]},
        reviewer="rita@x.org",
        due=datetime.now(UTC) + timedelta(days=30),
        actor=ADMIN,
    )
    rm.catch_up()
    with api_client(url, "10.0.0.1") as client:
        token = client.post(
            "/api/requestAuthToken", json={"email": "root@x.org", "password": PASSWORD}
        ).json()["auth_token"]
        answer = client.get(
            f"/api/v3_0/reviews/{quote('2026/Q1', safe='')}", headers={"Authorization": token}
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["name"] == "2026/Q1"


def test_an_inactive_users_access_is_not_certified(led: Ledger, world: dict[str, UUID]) -> None:
    led.start_review(
        "Q2",
        scope={"roles": ["consultant"]},
        reviewer="rita@x.org",
        due=datetime.now(UTC) + timedelta(days=30),
        actor=ADMIN,
    )
    led.deactivate_user(world["con"], actor=ADMIN)
    before = stored_state(led)
    with pytest.raises(Conflict, match="inactive and holds no role"):
        led.certify("Q2#1", reviewer="rita@x.org", reason="fine", actor=ADMIN)
    assert stored_state(led) == before
    assert led.revoke_via_review("Q2#1", reviewer="rita@x.org", reason="left", actor=ADMIN)
