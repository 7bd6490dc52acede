"""Permission-checked writes (`as_user`): a table of caller kinds by command kinds by target
accounts with the expected allow/deny, on both databases; each refusal raises PermissionDenied,
changes nothing in the domain and adds exactly one AccessDenied entry to the journal. Also the
CLI (`--as-user`), `ledger apply` (key `as_user`), the `denied` report, command-id retries,
bad `as_user` values, and a change to the acting user that lands between check and save."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import IntegrityError

from ledger import Conflict, Ledger, NotFound, PermissionDenied, ValidationError
from ledger.audit import Audit
from ledger.commands import COMMANDS
from ledger.commands.permissions import KINDS
from projections import ReadModel
from tests import workers
from tests.conftest import ADMIN
from tests.helpers import cli, event_names, one_line, stored_state
from tests.test_concurrency import run_workers

JOURNAL = "AccessDenial"


@dataclass
class World:
    """Accounts: Platform (the admins'), Cons (the consultancy of Client), Client, OtherCons
    (the consultancy of Other), Other. One user per caller kind."""

    led: Ledger
    accounts: dict[str, UUID]
    callers: dict[str, UUID]
    made: int = 0

    def fresh_user(self, account: str) -> UUID:
        """A new plain user (holding `viewer`) in `account`: each case acts on its own."""
        self.made += 1
        return self.led.create_user(
            f"target{self.made}@{account.lower()}.org",
            account_id=self.accounts[account],
            actor=ADMIN,
            roles=["viewer"],
        )


@pytest.fixture
def world(led: Ledger, acme: UUID) -> World:
    led.define_role("viewer", actor=ADMIN)
    accounts = {"Platform": led.create_account("Platform", actor=ADMIN)}
    accounts["Cons"] = led.create_account("Cons", actor=ADMIN)
    accounts["OtherCons"] = led.create_account("OtherCons", actor=ADMIN)
    accounts["Client"] = led.create_account(
        "Client", actor=ADMIN, consultancy_account_id=accounts["Cons"]
    )
    accounts["Other"] = led.create_account(
        "Other", actor=ADMIN, consultancy_account_id=accounts["OtherCons"]
    )

    def user(email: str, account: str, *roles: str) -> UUID:
        return led.create_user(email, account_id=accounts[account], actor=ADMIN, roles=roles)

    callers = {
        "admin": user("admin@platform.org", "Platform", "admin"),
        "admin-reader": user("reader@platform.org", "Platform", "admin-reader"),
        "account-admin own": user("aa@client.org", "Client", "account-admin"),
        "account-admin other": user("aa@other.org", "Other", "account-admin"),
        "consultant of client": user("con@cons.org", "Cons", "consultant"),
        "consultant elsewhere": user("con@othercons.org", "OtherCons", "consultant"),
        "member of consultancy": user("member@cons.org", "Cons"),
        "plain user": user("plain@client.org", "Client"),
        "inactive": user("gone@client.org", "Client", "account-admin", "admin"),
    }
    led.deactivate_user(callers["inactive"], actor=ADMIN)
    return World(led, accounts, callers)


Act = Callable[[World, str, UUID, UUID], Any]
"""A command kind: (world, target account name, fresh target user, as_user) -> result."""

ACTS: dict[str, Act] = {
    "grant_role": lambda w, a, t, u: w.led.grant_role(t, "account-admin", actor=ADMIN, as_user=u),
    "grant_role admin": lambda w, a, t, u: w.led.grant_role(t, "admin", actor=ADMIN, as_user=u),
    "grant_role consultant": lambda w, a, t, u: w.led.grant_role(
        t, "consultant", actor=ADMIN, as_user=u
    ),
    "revoke_role": lambda w, a, t, u: w.led.revoke_role(t, "viewer", actor=ADMIN, as_user=u),
    "extend_grant": lambda w, a, t, u: w.led.extend_grant(
        t, "viewer", datetime.now(UTC) + timedelta(days=30), actor=ADMIN, as_user=u
    ),
    "deactivate_user": lambda w, a, t, u: w.led.deactivate_user(t, actor=ADMIN, as_user=u),
    "update_user": lambda w, a, t, u: w.led.update_user(t, timezone="UTC", actor=ADMIN, as_user=u),
    "set_password": lambda w, a, t, u: w.led.set_password(
        t, "correct horse battery", actor=ADMIN, as_user=u
    ),
    "create_user": lambda w, a, t, u: w.led.create_user(
        f"new-{t}@x.org", account_id=w.accounts[a], actor=ADMIN, as_user=u
    ),
    "create_user with role": lambda w, a, t, u: w.led.create_user(
        f"new-{t}@x.org", account_id=w.accounts[a], roles=["admin-reader"], actor=ADMIN, as_user=u
    ),
    "erase_user": lambda w, a, t, u: w.led.erase_user(t, actor=ADMIN, reason="GDPR", as_user=u),
    "record_login": lambda w, a, t, u: w.led.record_login(t, as_user=u),
    "add_annotation": lambda w, a, t, u: w.led.add_annotation(
        w.accounts[a],
        content=f"note {t}",
        start=datetime(2026, 1, 1, tzinfo=UTC),
        end=datetime(2026, 1, 2, tzinfo=UTC),
        source="ops",
        actor=ADMIN,
        as_user=u,
    ),
    "update_account": lambda w, a, t, u: w.led.update_account(
        w.accounts[a], logo_url=f"https://x.org/{t}.png", actor=ADMIN, as_user=u
    ),
    "grant_account_role": lambda w, a, t, u: w.led.grant_account_role(
        w.accounts[a], "Consultancy", actor=ADMIN, as_user=u
    ),
    "define_role": lambda w, a, t, u: w.led.define_role(f"role-{t}", actor=ADMIN, as_user=u),
}

CALLERS = (
    "admin",
    "admin-reader",
    "account-admin own",
    "account-admin other",
    "consultant of client",
    "consultant elsewhere",
    "member of consultancy",
    "plain user",
    "inactive",
    "self",
)
# What the managers of an account (its account-admin, the consultant of its consultancy) may do
MANAGED = {
    "grant_role",
    "revoke_role",
    "extend_grant",
    "deactivate_user",
    "update_user",
    "set_password",
    "create_user",
    "add_annotation",
}
SELF_MAY = {"update_user", "set_password", "record_login", "add_annotation"}


def expected(caller: str, act: str, account: str) -> bool:
    """The table, written out by hand (not computed by the rules under test)."""
    if caller == "admin":
        return True
    if caller == "self":
        return act in SELF_MAY
    client = account == "Client"
    if caller in ("account-admin own", "consultant of client"):
        return client and act in MANAGED
    if caller in ("account-admin other", "consultant elsewhere"):
        return not client and act in MANAGED
    if caller == "plain user":  # a member of Client: annotates it, nothing else
        return client and act == "add_annotation"
    return False  # admin-reader, member of consultancy, inactive


def journal_size(led: Ledger) -> int:
    return event_names(led).count("AccessDenied")


def domain_rows(rm: ReadModel) -> tuple[Any, ...]:
    """The domain as the read models hold it: the audit log's rows but the journal's, and
    every user and account."""
    rm.catch_up()
    log = rm.audit_log()
    domain = log[log.aggregate_type != JOURNAL]
    return (
        list(zip(domain.position, domain.aggregate_id, domain.event, strict=True)),
        [user.model_dump() for user in rm.list_users(include_inactive=True)],
        [account.model_dump() for account in rm.list_accounts()],
    )


@pytest.mark.parametrize("act", list(ACTS))
def test_the_matrix(world: World, rm: ReadModel, act: str) -> None:
    mismatches = []
    for account in ("Client", "Other"):
        for caller in CALLERS:
            target = world.fresh_user(account)
            as_user = target if caller == "self" else world.callers[caller]
            before_rows, before_journal = domain_rows(rm), journal_size(world.led)
            before_state = stored_state(world.led)
            try:
                ACTS[act](world, account, target, as_user)
                allowed = True
            except PermissionDenied as refused:
                allowed = False
                message = str(refused)
                assert "\n" not in message and str(as_user) in message and act.split()[0] in message
                assert "@" not in message  # ids, never emails
                # nothing in the domain, one entry in the journal, nothing in the side tables
                assert domain_rows(rm) == before_rows, (caller, act, account)
                assert journal_size(world.led) == before_journal + 1
                assert stored_state(world.led)[1:] == before_state[1:]
                assert stored_state(world.led)[0] == before_state[0] + 1
            else:
                assert journal_size(world.led) == before_journal
            if allowed != expected(caller, act, account):
                mismatches.append((caller, act, account, "allowed" if allowed else "denied"))
    assert not mismatches


def test_every_command_has_a_declared_kind() -> None:
    assert set(COMMANDS) == set(KINDS)


def test_without_as_user_commands_work_as_before(world: World) -> None:
    target = world.fresh_user("Client")
    assert world.led.grant_role(target, "admin", actor=ADMIN)
    assert journal_size(world.led) == 0


def test_act_as_sets_the_threads_default_acting_user(world: World) -> None:
    target = world.fresh_user("Other")
    world.led.act_as("aa@client.org")
    try:
        with pytest.raises(PermissionDenied, match="not-account-manager"):
            world.led.deactivate_user(target, actor=ADMIN)
        assert world.led.deactivate_user(target, actor=ADMIN, as_user="aa@other.org")
    finally:
        world.led.act_as(None)
    assert world.led.reactivate_user(target, actor=ADMIN)  # trusted again
    assert journal_size(world.led) == 1


def test_expired_grants_count_as_not_held(url: str, world: World) -> None:
    clock_now = [datetime.now(UTC)]
    timed = Ledger(url, clock=lambda: clock_now[0])
    try:
        boss = timed.create_user(
            "temp-aa@client.org", account_id=world.accounts["Client"], actor=ADMIN
        )
        timed.grant_role(
            boss, "account-admin", actor=ADMIN, until=clock_now[0] + timedelta(hours=1)
        )
        target = world.fresh_user("Client")
        assert timed.grant_role(target, "account-admin", actor=ADMIN, as_user=boss)
        clock_now[0] += timedelta(hours=2)  # nothing ran at the end: the grant ended anyway
        with pytest.raises(PermissionDenied, match="not-account-manager"):
            timed.revoke_role(target, "account-admin", actor=ADMIN, as_user=boss)
    finally:
        timed.close()


def test_a_user_holding_admin_is_out_of_reach_of_account_managers(world: World) -> None:
    target = world.fresh_user("Client")
    world.led.grant_role(target, "admin-reader", actor=ADMIN)
    for caller in ("account-admin own", "consultant of client"):
        with pytest.raises(PermissionDenied, match="privileged-target"):
            world.led.deactivate_user(target, actor=ADMIN, as_user=world.callers[caller])
        with pytest.raises(PermissionDenied, match="privileged-target"):
            world.led.set_password(
                target, "new password 123", actor=ADMIN, as_user=world.callers[caller]
            )
    with pytest.raises(PermissionDenied, match="self"):  # not even an admin changes their own
        world.led.revoke_role(
            world.callers["admin"], "admin", actor=ADMIN, as_user="admin@platform.org"
        )


def test_the_consultant_loses_reach_when_the_consultancy_changes(world: World) -> None:
    target = world.fresh_user("Client")
    consultant = world.callers["consultant of client"]
    assert world.led.deactivate_user(target, actor=ADMIN, as_user=consultant)
    world.led.set_consultancy(world.accounts["Client"], None, actor=ADMIN)
    with pytest.raises(PermissionDenied, match="not-account-manager"):
        world.led.reactivate_user(target, actor=ADMIN, as_user=consultant)


# -- bad as_user values: rejected with one clear line, nothing recorded -----------------------


@pytest.mark.parametrize(
    ("as_user", "error", "named"),
    [
        ("nobody@nowhere.org", NotFound, "as_user 'nobody@nowhere.org' not found"),
        (str(UUID(int=7)), NotFound, str(UUID(int=7))),
        ("ann\x00@x.org", ValidationError, "as_user"),
        ("not an id", ValidationError, "as_user"),
        ("x" * 5000, ValidationError, "as_user"),
    ],
)
def test_a_bad_as_user_is_rejected_and_records_nothing(
    world: World, as_user: str, error: type[Exception], named: str
) -> None:
    target = world.fresh_user("Client")
    before = stored_state(world.led)
    with pytest.raises(error) as rejected:
        world.led.grant_role(target, "viewer", actor=ADMIN, as_user=as_user)
    assert named in str(rejected.value) and "\n" not in str(rejected.value)
    assert len(str(rejected.value)) < 300
    assert stored_state(world.led) == before


def test_an_account_or_an_erased_user_as_user_records_nothing(world: World) -> None:
    target = world.fresh_user("Client")
    before = stored_state(world.led)
    with pytest.raises(NotFound, match="as_user"):
        world.led.grant_role(target, "viewer", actor=ADMIN, as_user=world.accounts["Client"])
    assert stored_state(world.led) == before
    erased = world.callers["account-admin own"]
    world.led.erase_user(erased, actor=ADMIN, reason="left")
    before = stored_state(world.led)
    with pytest.raises(ValidationError, match=f"as_user {erased}: the user is erased"):
        world.led.grant_role(target, "viewer", actor=ADMIN, as_user=erased)
    with pytest.raises(NotFound):  # by email: the claim went with the erasure
        world.led.grant_role(target, "viewer", actor=ADMIN, as_user="aa@client.org")
    assert stored_state(world.led) == before


# -- idempotency ---------------------------------------------------------------------------------


def test_a_denied_command_id_is_journalled_once_and_may_apply_later(world: World) -> None:
    target = world.fresh_user("Client")
    boss = world.callers["account-admin own"]
    for _ in range(3):
        with pytest.raises(PermissionDenied):
            world.led.grant_role(target, "admin", actor=ADMIN, as_user=boss, command_id="c-1")
    assert journal_size(world.led) == 1
    with pytest.raises(PermissionDenied):  # other arguments under the same id: their own entry
        world.led.grant_role(target, "consultant", actor=ADMIN, as_user=boss, command_id="c-1")
    assert journal_size(world.led) == 2
    with pytest.raises(PermissionDenied):  # without an id, each refusal is an entry
        world.led.grant_role(target, "admin", actor=ADMIN, as_user=boss)
    assert journal_size(world.led) == 3
    world.led.grant_role(boss, "admin", actor=ADMIN)  # the caller is made an admin
    assert world.led.grant_role(target, "admin", actor=ADMIN, as_user=boss, command_id="c-1")
    # a command id a trusted script applied is no way around the check: with as_user it is
    # another command under that id
    world.led.deactivate_user(target, actor=ADMIN, command_id="c-2")
    before = stored_state(world.led)
    with pytest.raises(Conflict, match="c-2"):
        world.led.deactivate_user(
            target, actor=ADMIN, as_user=world.callers["plain user"], command_id="c-2"
        )
    assert stored_state(world.led) == before
    # applied now: a repeat returns the first result and records nothing
    assert world.led.grant_role(target, "admin", actor=ADMIN, as_user=boss, command_id="c-1")
    assert not world.led.last_recorded
    assert journal_size(world.led) == 3


# -- the check and the save are one decision ----------------------------------------------------


def test_a_change_to_the_caller_between_check_and_save_is_caught(
    url: str, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caller is deactivated by another writer after the check and before the save: the
    save's read guard fails, the command runs again on fresh state and is refused."""
    boss = world.callers["account-admin own"]
    target = world.fresh_user("Client")
    other = Ledger(url)
    real_save = world.led.runner.save
    raced = []

    def save_after_a_rival(*args: Any, **kwargs: Any) -> Any:
        if not raced:
            raced.append(True)
            other.deactivate_user(boss, actor=ADMIN, reason="rival")
        return real_save(*args, **kwargs)

    monkeypatch.setattr(world.led.runner, "save", save_after_a_rival)
    try:
        with pytest.raises(PermissionDenied, match="inactive-caller"):
            world.led.grant_role(target, "account-admin", actor=ADMIN, as_user=boss)
    finally:
        other.close()
    assert raced
    assert "account-admin" not in world.led.repository.get(target).held_now(datetime.now(UTC))


def test_a_batch_decided_on_a_caller_changed_since_is_not_saved(url: str, world: World) -> None:
    """In a batch, the check's reads are guarded at its commit: a rival's change to the caller
    in between fails the whole batch (`ledger apply` then runs its lines one by one)."""
    boss = world.callers["account-admin own"]
    target = world.fresh_user("Client")
    other = Ledger(url)
    try:
        with world.led.batch() as batch:
            assert world.led.grant_role(target, "account-admin", actor=ADMIN, as_user=boss)
            other.deactivate_user(boss, actor=ADMIN, reason="rival")
            with pytest.raises(IntegrityError):
                batch.commit()
    finally:
        other.close()
    assert "account-admin" not in world.led.repository.get(target).held_now(datetime.now(UTC))
    with pytest.raises(PermissionDenied, match="inactive-caller"):
        world.led.grant_role(target, "account-admin", actor=ADMIN, as_user=boss)


def test_extending_an_accounts_grant_is_for_admins(world: World) -> None:
    client = world.accounts["Client"]
    until = datetime.now(UTC) + timedelta(days=30)
    world.led.grant_account_role(client, "Consultancy", actor=ADMIN)
    with pytest.raises(PermissionDenied, match="admin-only"):
        world.led.extend_grant(client, "Consultancy", until, actor=ADMIN, as_user="aa@client.org")
    assert world.led.extend_grant(
        client, "Consultancy", until, actor=ADMIN, as_user="admin@platform.org"
    )


# -- CLI ---------------------------------------------------------------------------------------


def test_cli_as_user_denied_exits_1_with_one_line(url: str, world: World) -> None:
    target = world.fresh_user("Client")
    result = cli(
        "--db",
        url,
        "user",
        "grant-role",
        str(target),
        "admin",
        "--as-user",
        "aa@client.org",
        code=1,
    )
    line = one_line(result)
    assert line.startswith("error: permission denied: user ")
    assert "rule admin-granted-role" in line and "aa@client.org" not in line
    # before the subcommand, too; allowed
    cli("--db", url, "--as-user", "aa@client.org", "user", "deactivate", str(target))
    result = cli(
        "--db", url, "--as-user", "nobody@x.org", "user", "reactivate", str(target), code=1
    )
    assert "as_user 'nobody@x.org' not found" in one_line(result)
    assert journal_size(world.led) == 1


# -- ledger apply --------------------------------------------------------------------------------


def test_apply_rejects_a_denied_line_and_applies_the_others(
    url: str, world: World, tmp_path: Path
) -> None:
    first, second = world.fresh_user("Client"), world.fresh_user("Client")
    lines = [
        {"command": "deactivate_user", "user": str(first), "as_user": "aa@client.org"},
        {"command": "grant_role", "user": str(second), "role": "admin", "as_user": "aa@client.org"},
        {"command": "grant_role", "user": str(second), "role": "account-admin"},
        {"command": "deactivate_user", "user": str(second), "as_user": "nobody@x.org"},
    ]
    batch = tmp_path / "lines.jsonl"
    batch.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    result = cli("--db", url, "--json", "apply", str(batch), code=1)
    summary = json.loads(result.stdout)
    assert summary["applied"] == 2 and summary["unchanged"] == 0
    rejected = {row["line"]: row for row in summary["rejected"]}
    assert set(rejected) == {2, 4}
    assert rejected[2]["error_type"] == "PermissionDenied"
    assert "rule admin-granted-role" in rejected[2]["error"]
    assert rejected[4]["error_type"] == "NotFound"
    assert journal_size(world.led) == 1
    # --dry-run reports the refusal and journals nothing (it writes nothing at all)
    result = cli("--db", url, "--json", "apply", "--dry-run", str(batch), code=1)
    assert {row["line"] for row in json.loads(result.stdout)["rejected"]} == {2, 4}
    assert journal_size(world.led) == 1
    # the CLI's --as-user is the default of every line without one
    again = tmp_path / "again.jsonl"
    again.write_text(json.dumps({"command": "reactivate_user", "user": str(first)}) + "\n")
    result = cli(
        "--db", url, "--as-user", "con@othercons.org", "--json", "apply", str(again), code=1
    )
    assert json.loads(result.stdout)["rejected"][0]["error_type"] == "PermissionDenied"
    assert journal_size(world.led) == 2


# -- the report ----------------------------------------------------------------------------------


def test_the_denied_report_lists_each_refusal(url: str, world: World) -> None:
    target = world.fresh_user("Other")
    boss = world.callers["account-admin own"]
    start = datetime.now(UTC)
    with pytest.raises(PermissionDenied):
        world.led.deactivate_user(target, actor="cli:eve", reason="JIRA-9", as_user=boss)
    with pytest.raises(PermissionDenied):
        world.led.define_role(
            "auditor", actor="cli:eve", as_user="plain@client.org", command_id="d"
        )
    result = cli(
        "--db", url, "audit", "report", "denied", "--format", "json", "--since", start.isoformat()
    )
    rows = json.loads(result.stdout)["reports"]["denied"]
    simplified = [
        {
            key: row[key]
            for key in (
                "as_user",
                "as_user_email",
                "actor",
                "command",
                "targets",
                "rule",
                "why",
                "reason",
                "command_id",
            )
        }
        for row in rows
    ]
    assert simplified == [
        {
            "as_user": str(boss),
            "as_user_email": "aa@client.org",
            "actor": "cli:eve",
            "command": "deactivate_user",
            "targets": str(target),
            "rule": "not-account-manager",
            "why": "only an admin, an account-admin of the user's account or a consultant of "
            "its consultancy may",
            "reason": "JIRA-9",
            "command_id": None,
        },
        {
            "as_user": str(world.callers["plain user"]),
            "as_user_email": "plain@client.org",
            "actor": "cli:eve",
            "command": "define_role",
            "targets": "auditor",
            "rule": "admin-only",
            "why": "only an admin may",
            "reason": None,
            "command_id": "d",
        },
    ]
    with Audit(url) as auditor:
        _, differences = auditor.check()
        assert differences == []
        frame = auditor.report("denied", since=start)
    assert list(frame["command"]) == ["deactivate_user", "define_role"]
    cli("--db", url, "audit", "verify")
    # an erased caller's email is not shown
    world.led.erase_user(boss, actor=ADMIN, reason="left")
    result = cli(
        "--db", url, "audit", "report", "denied", "--format", "json", "--since", start.isoformat()
    )
    assert "aa@client.org" not in result.stdout
    assert json.loads(result.stdout)["reports"]["denied"][0]["as_user_email"] == "[erased]"
    html = cli("--db", url, "audit", "report", "all", "--format", "html").stdout
    assert "Commands refused by permission checks" in html


def test_replay_agrees_with_the_live_read_models(url: str, world: World, tmp_path: Path) -> None:
    target = world.fresh_user("Client")
    with pytest.raises(PermissionDenied):
        world.led.erase_user(target, actor=ADMIN, reason="x", as_user="aa@client.org")
    out = tmp_path / "replay.db"
    until = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    cli("--db", url, "audit", "replay", "--until", until, "--out", str(out))
    replayed = ReadModel(f"sqlite:///{out}")
    try:
        log = replayed.audit_log()
        assert list(log[log.aggregate_type == JOURNAL]["event"]) == ["AccessDenied"]
    finally:
        replayed.close()
    cli("--db", url, "audit", "check")


# -- several processes at once ------------------------------------------------------------------


@pytest.mark.slow
def test_four_processes_retrying_one_denied_command_id_journal_it_once(world: World) -> None:
    target = world.fresh_user("Client")
    args = (world.led.url, target, "aa@client.org", "same-id", 3)
    outcomes = run_workers(workers.denied_grants, *[args] * 4)
    assert outcomes == ["PermissionDenied"] * 12
    assert journal_size(world.led) == 1


@pytest.mark.slow
def test_four_processes_denied_at_once_journal_each_denial(world: World) -> None:
    target = world.fresh_user("Client")
    args = (world.led.url, target, "aa@client.org", None, 5)
    outcomes = run_workers(workers.denied_grants, *[args] * 4)
    assert outcomes == ["PermissionDenied"] * 20
    assert journal_size(world.led) == 20
    with Audit(world.led.url) as auditor:
        assert auditor.verify().ok
