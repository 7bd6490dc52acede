"""Moving a user to another account (`move_user`, event UserMoved) and changing a role's
description (`describe_role`, `describe_account_role`): what they record and return, what they
refuse (recording nothing), and how the read models, reports, replays and the CLI show them."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from ledger import Conflict, Ledger, LedgerError, NotFound, ValidationError
from ledger.audit import Audit
from ledger.domain import Account, User
from projections import ReadModel
from tests.conftest import ADMIN
from tests.helpers import api_client, cli, event_names, one_line, stored_state

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


class Clock:
    """An hour later on each event."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(hours=1)
        return self.now


@pytest.fixture
def timed(url: str) -> Ledger:
    return Ledger(url, clock=Clock())


def _two_accounts(led: Ledger) -> tuple[UUID, UUID, UUID]:
    led.define_role("account-admin", actor=ADMIN)
    acme = led.create_account("Acme", actor=ADMIN)
    beta = led.create_account("Beta", actor=ADMIN)
    ann = led.create_user("ann@acme.org", account_id=acme, actor=ADMIN, roles=["account-admin"])
    return acme, beta, ann


def _members(led: Ledger, account: UUID) -> set[UUID]:
    found = led.repository.get(account)
    assert isinstance(found, Account)
    return set(found.members)


# -- move_user ---------------------------------------------------------------------------------


def test_a_move_records_the_user_leaving_one_account_and_joining_the_other(
    timed: Ledger,
) -> None:
    acme, beta, ann = _two_accounts(timed)
    before = len(event_names(timed))
    assert timed.move_user(ann, beta, actor=ADMIN, reason="JIRA-3") is True
    assert sorted(event_names(timed)[before:]) == ["UserJoined", "UserLeft", "UserMoved"]
    moved = timed.repository.get(ann)
    assert isinstance(moved, User) and moved.account_id == beta
    assert "account-admin" in moved.roles and moved.active
    assert _members(timed, acme) == set() and _members(timed, beta) == {ann}
    # already there: nothing recorded
    assert timed.move_user(ann, str(beta), actor=ADMIN) is False
    assert len(event_names(timed)) == before + 3


def test_the_read_models_show_the_move_now_and_as_it_stood_before(
    timed: Ledger, tmp_path: Path
) -> None:
    acme, beta, ann = _two_accounts(timed)
    moved_from = timed.runner.clock()  # an instant between the creation and the move
    timed.move_user(ann, beta, actor=ADMIN, reason="secondment")
    rm = ReadModel(timed.url)
    try:
        rm.catch_up()
        assert [u.id for u in rm.list_users(account_id=beta)] == [ann]
        assert rm.list_users(account_id=acme) == []
        user = rm.get_user(ann)
        assert user is not None and user.account_id == beta
        assert rm.has_role(ann, "account-admin")
        log = rm.audit_log()
        move = log[log["event"] == "UserMoved"].iloc[0]
        assert move["from_account_id"] == str(acme)
        assert move["reason"] == "secondment"
        # each account's log shows its side of the move
        assert "UserLeft" in set(rm.audit_log(account_id=acme)["event"])
        assert {"UserJoined", "UserMoved"} <= set(rm.audit_log(account_id=beta)["event"])
    finally:
        rm.close()
    with Audit(timed.url) as audit:
        movers = audit.report("joiners-movers-leavers", since=T0)
        moves = movers[movers["event"] == "UserMoved"]
        assert list(moves["kind"]) == ["mover"] and list(moves["account"]) == ["Beta"]
        assert list(audit.report("access-review", at=moved_from)["account"]) == ["Acme"]
        assert list(audit.report("access-review")["account"]) == ["Beta"]
        out = tmp_path / "then.db"
        audit.replay(moved_from, out)
        assert audit.check()[1] == []
    then = ReadModel(f"sqlite:///{out}")
    try:
        assert [u.id for u in then.list_users(account_id=acme)] == [ann]
    finally:
        then.close()


def test_closing_the_old_account_leaves_the_moved_user_active(led: Ledger) -> None:
    acme, beta, ann = _two_accounts(led)
    led.move_user(ann, beta, actor=ADMIN)
    led.close_account(acme, actor=ADMIN)
    assert led.repository.get(ann).active
    led.close_account(beta, actor=ADMIN)
    assert not led.repository.get(ann).active


def test_a_user_of_a_closed_account_can_move_on_to_an_open_one(led: Ledger) -> None:
    acme, beta, ann = _two_accounts(led)
    led.close_account(acme, actor=ADMIN)
    assert led.move_user(ann, beta, actor=ADMIN) is True
    assert led.reactivate_user(ann, actor=ADMIN) is True
    assert _members(led, beta) == {ann}


@pytest.mark.parametrize(
    ("target", "error", "message"),
    [
        ("closed", Conflict, "account 'Gone' \\(.*\\) is closed"),
        (UUID(int=7), NotFound, "account 00000000-0000-0000-0000-000000000007 not found"),
        ("no-such-account", ValidationError, "'no-such-account'"),
        ("", ValidationError, "invalid account id '': not a UUID"),
        (None, ValidationError, "invalid account id None: not a UUID"),
        ("\x00", ValidationError, "invalid account id '\\\\x00': not a UUID"),
    ],
)
def test_a_move_to_a_closed_unknown_or_malformed_account_is_refused(
    led: Ledger, target: object, error: type[LedgerError], message: str
) -> None:
    _, _, ann = _two_accounts(led)
    if target == "closed":
        target = led.create_account("Gone", actor=ADMIN)
        led.close_account(target, actor=ADMIN)
    before = stored_state(led)
    with pytest.raises(error, match=message) as refused:
        led.move_user(ann, target, actor=ADMIN)  # type: ignore[arg-type]
    assert len(str(refused.value).splitlines()) == 1
    assert stored_state(led) == before


def test_moving_an_unknown_or_erased_user_is_refused(led: Ledger) -> None:
    _, beta, ann = _two_accounts(led)
    with pytest.raises(NotFound, match=r"nobody@acme\.org"):
        led.move_user("nobody@acme.org", beta, actor=ADMIN)
    with pytest.raises(NotFound, match=str(UUID(int=9))):
        led.move_user(UUID(int=9), beta, actor=ADMIN)
    led.erase_user(ann, actor=ADMIN, reason="GDPR")
    before = stored_state(led)
    with pytest.raises(Conflict, match=f"user {ann} is erased"):
        led.move_user(ann, beta, actor=ADMIN)
    assert stored_state(led) == before
    with pytest.raises(ValidationError, match="actor"):
        led.move_user(ann, beta, actor="")


def test_a_move_is_idempotent_by_command_id(led: Ledger) -> None:
    acme, beta, ann = _two_accounts(led)
    assert led.move_user(ann, beta, actor=ADMIN, command_id="m-1") is True
    led.move_user(ann, acme, actor=ADMIN)
    before = stored_state(led)
    assert led.move_user(ann, beta, actor=ADMIN, command_id="m-1") is True
    assert stored_state(led) == before
    with pytest.raises(Conflict, match="m-1"):
        led.move_user(ann, acme, actor=ADMIN, command_id="m-1")


def test_two_processes_moving_one_user_at_once_leave_it_in_exactly_one_account(
    url: str, led: Ledger
) -> None:
    acme, beta, ann = _two_accounts(led)
    gamma = led.create_account("Gamma", actor=ADMIN)
    errors: list[Exception] = []

    def move(target: UUID) -> None:
        with Ledger(url) as own:
            try:
                for _ in range(5):
                    own.move_user(ann, target, actor=ADMIN)
            except Conflict as error:
                errors.append(error)

    threads = [threading.Thread(target=move, args=(target,)) for target in (beta, gamma)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with Ledger(url) as fresh:
        user = fresh.repository.get(ann)
        holding = [a for a in (acme, beta, gamma) if ann in _members(fresh, a)]
        assert holding == [user.account_id]


def test_the_cli_and_apply_move_a_user_by_email_and_account_name(
    led: Ledger, tmp_path: Path
) -> None:
    acme, _, ann = _two_accounts(led)
    moved = cli("--db", led.url, "user", "move", "ann@acme.org", "Beta")
    assert moved.exit_code == 0, moved.output
    assert "user moved" in moved.stdout
    lines = tmp_path / "moves.jsonl"
    lines.write_text(
        json.dumps({"command": "move_user", "user": "ann@acme.org", "account": "Acme"}) + "\n"
    )
    applied = cli("--db", led.url, "--json", "apply", str(lines))
    assert applied.exit_code == 0, applied.output
    assert json.loads(applied.stdout)["applied"] == 1
    assert led.repository.get(ann).account_id == acme
    before = stored_state(led)
    bad = cli("--db", led.url, "user", "move", "ann@acme.org", "No Such\x07Account", code=1)
    assert "invalid account name 'No Such\\x07Account'" in one_line(bad)
    unknown = cli("--db", led.url, "user", "move", "ann@acme.org", "Nowhere", code=1)
    assert "Nowhere" in one_line(unknown)
    assert stored_state(led) == before


# -- describe_role ----------------------------------------------------------------------------


def test_a_role_description_changes_once_and_read_models_show_it(
    timed: Ledger, tmp_path: Path
) -> None:
    timed.define_role("admin", "Platform administrator", actor=ADMIN)
    timed.define_account_role("Consultancy", actor=ADMIN)
    then = timed.runner.clock()
    assert timed.describe_role("admin", "Runs the platform", actor=ADMIN) is True
    assert timed.describe_role("admin", "Runs the platform", actor=ADMIN) is False
    assert timed.describe_account_role("Consultancy", "Advises clients", actor=ADMIN) is True
    assert timed.describe_account_role("Consultancy", "Advises clients", actor=ADMIN) is False
    rm = ReadModel(timed.url)
    try:
        rm.catch_up()
        assert [(r.name, r.description) for r in rm.list_roles()] == [
            ("admin", "Runs the platform")
        ]
        assert [(r.name, r.description) for r in rm.list_account_roles()] == [
            ("Consultancy", "Advises clients")
        ]
        assert timed.describe_role("admin", None, actor=ADMIN) is True
        rm.catch_up()
        assert [r.description for r in rm.list_roles()] == [None]
        log = rm.audit_log()
        assert list(log[log["event"] == "RoleDescribed"]["name"]) == [
            "admin",
            "admin",
        ]
    finally:
        rm.close()
    with Audit(timed.url) as audit:
        out = tmp_path / "then.db"
        audit.replay(then, out)
        assert audit.check()[1] == []
    past = ReadModel(f"sqlite:///{out}")
    try:
        assert [r.description for r in past.list_roles()] == ["Platform administrator"]
    finally:
        past.close()


@pytest.mark.parametrize(
    ("name", "description", "error", "message"),
    [
        ("nope", "x", NotFound, "role 'nope' is not defined"),
        ("admin", "x" * 256, ValidationError, "description"),
        ("admin", "bad\x1bescape", ValidationError, "description"),
        ("", "x", ValidationError, "role name '': must not be empty"),
        ("admin", 42, ValidationError, "description"),
    ],
)
def test_a_bad_description_or_an_undefined_role_is_refused(
    led: Ledger, name: str, description: object, error: type[LedgerError], message: str
) -> None:
    led.define_role("admin", actor=ADMIN)
    led.define_account_role("admin", actor=ADMIN)
    before = stored_state(led)
    for describe in (led.describe_role, led.describe_account_role):
        with pytest.raises(error, match=message) as refused:
            describe(name, description, actor=ADMIN)  # type: ignore[arg-type]
        assert len(str(refused.value).splitlines()) == 1
    assert stored_state(led) == before


def test_the_cli_and_apply_describe_roles(led: Ledger, tmp_path: Path) -> None:
    led.define_role("admin", actor=ADMIN)
    led.define_account_role("Consultancy", "old", actor=ADMIN)
    described = cli("--db", led.url, "role", "describe", "admin", "Runs the platform")
    assert described.exit_code == 0, described.output
    cleared = cli("--db", led.url, "account-role", "describe", "Consultancy", "")
    assert cleared.exit_code == 0, cleared.output
    lines = tmp_path / "roles.jsonl"
    lines.write_text(
        json.dumps({"command": "describe_role", "name": "admin", "description": "Root"}) + "\n"
    )
    applied = cli("--db", led.url, "--json", "apply", str(lines))
    assert json.loads(applied.stdout)["applied"] == 1
    listed = cli("--db", led.url, "--json", "role", "list")
    assert json.loads(listed.stdout) == [{"name": "admin", "description": "Root"}]
    listed = cli("--db", led.url, "--json", "account-role", "list")
    assert json.loads(listed.stdout) == [{"name": "Consultancy", "description": None}]
    name = f"r-{uuid4().hex[:6]}"
    missing = cli("--db", led.url, "role", "describe", name, "x", code=1)
    assert f"role {name!r} is not defined" in one_line(missing)


def test_apply_rejects_a_bad_move_or_description_line_and_records_nothing(
    led: Ledger, tmp_path: Path
) -> None:
    _two_accounts(led)
    led.define_role("admin", actor=ADMIN)
    lines = tmp_path / "bad.jsonl"
    lines.write_text(
        "\n".join(
            json.dumps(line)
            for line in (
                {"command": "move_user", "user": "ann@acme.org", "account": "Nowhere"},
                {"command": "move_user", "user": "nobody@acme.org", "account": "Beta"},
                {"command": "move_user", "user": "ann@acme.org"},
                {"command": "describe_role", "name": "admin", "description": "x" * 300},
                {"command": "describe_account_role", "name": "nope", "description": "x"},
            )
        )
        + "\n"
    )
    before = stored_state(led)
    result = cli("--db", led.url, "--json", "apply", str(lines), code=1)
    summary = json.loads(result.stdout)
    assert summary["applied"] == 0
    errors = [line["error"] for line in summary["rejected"]]
    assert len(errors) == 5 and all(len(error.splitlines()) == 1 for error in errors)
    assert "Nowhere" in errors[0] and "nobody@acme.org" in errors[1]
    assert "'account_id'" in errors[2] and "description" in errors[3]
    assert "account role 'nope' is not defined" in errors[4]
    assert stored_state(led) == before


def test_reports_at_an_instant_before_a_move_name_the_account_of_then(timed: Ledger) -> None:
    _, beta, ann = _two_accounts(timed)
    timed.define_role("payments", actor=ADMIN)
    timed.define_role("approver", actor=ADMIN)
    timed.define_sod_rule("four-eyes", ["payments", "approver"], actor=ADMIN)
    timed.grant_role(ann, "payments", actor=ADMIN)
    timed.grant_role(
        ann, "approver", actor=ADMIN, exception_approved_by="cli:ciso", reason="month end"
    )
    then = timed.runner.clock()
    timed.move_user(ann, beta, actor=ADMIN)
    with Audit(timed.url) as audit:
        assert list(audit.report("privileged", at=then)["account"]) == ["Acme"]
        assert list(audit.report("sod-violations", at=then)["account"]) == ["Acme"]
        assert list(audit.report("privileged")["account"]) == ["Beta"]
        assert list(audit.report("sod-violations")["account"]) == ["Beta"]


def test_a_moved_users_new_account_reads_nothing_of_the_old_one(
    timed: Ledger, tmp_path: Path
) -> None:
    """SPEC §7: no response holds data of a tenant the caller may not read — the account a
    user moved from is named by id only, and their entries from before are its to read."""
    password = "correct horse battery"
    acme, beta, ann = _two_accounts(timed)
    timed.define_role("ops", actor=ADMIN)
    timed.update_account(acme, name="Acme Secret Merger Co", actor=ADMIN)
    timed.grant_role(ann, "ops", actor=ADMIN, reason="project Zeus")
    timed.move_user(ann, beta, actor=ADMIN)
    timed.create_user(
        "carl@beta.org", account_id=beta, actor=ADMIN, roles=["account-admin"], password=password
    )
    timed.define_role("admin", actor=ADMIN)
    timed.create_user(
        "root@x.org", account_id=beta, actor=ADMIN, roles=["admin"], password=password
    )
    rm = ReadModel(timed.url)
    try:
        rm.catch_up()
    finally:
        rm.close()
    with api_client(timed.url, "10.0.0.9") as client:

        def token(email: str) -> dict[str, str]:
            answer = client.post(
                "/api/requestAuthToken", json={"email": email, "password": password}
            )
            return {"Authorization": answer.json()["auth_token"]}

        carl, root = token("carl@beta.org"), token("root@x.org")
        log = client.get(f"/api/v3_0/users/{ann}/auditlog", headers=carl)
        feed = client.get("/api/v3_0/auditlog/changes", headers=carl)
        assert log.status_code == feed.status_code == 200
        seen = log.text + feed.text
        assert "Secret Merger" not in seen and "Zeus" not in seen and str(acme) in seen
        assert all(entry["affected_account_id"] == str(beta) for entry in log.json())
        everything = client.get(f"/api/v3_0/users/{ann}/auditlog", headers=root).json()
        assert any("Zeus" in (entry["reason"] or "") for entry in everything)  # an admin's
