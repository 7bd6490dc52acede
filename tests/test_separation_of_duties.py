"""Separation of duties: a grant that would give one user (or account) both roles of a rule is a
Conflict naming the rule, unless an approved exception (approver and reason) comes with it,
recorded with the grant; `sod-violations` lists holders in conflict at T, including grants
made before the rule."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pandas as pd
import pytest

from ledger import Conflict, Ledger, NotFound, ValidationError
from ledger.audit import Audit
from projections import ReadModel
from tests.conftest import ADMIN
from tests.helpers import Clock, cli, event_names, one_line, stored_state

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
def timed(url: str, acme: UUID, clock: Clock) -> Iterator[Ledger]:
    ledger = Ledger(url, clock=clock)
    try:
        ledger.define_role("payments-approver", actor=ADMIN)
        ledger.define_role("payments-creator", actor=ADMIN)
        ledger.define_account_role("Auditor", actor=ADMIN)
        yield ledger
    finally:
        ledger.close()


def test_a_user_rule_refuses_the_second_role_naming_the_rule(timed: Ledger, acme: UUID) -> None:
    ann = timed.create_user("ann@acme.org", account_id=acme, actor=ADMIN)
    assert timed.define_sod_rule(
        "four-eyes-payments", ["payments-creator", "payments-approver"], actor=ADMIN
    )
    assert not timed.define_sod_rule(
        "four-eyes-payments", ["payments-approver", "payments-creator"], actor=ADMIN
    )  # the same rule: nothing recorded
    timed.grant_role(ann, "payments-creator", actor=ADMIN)
    before = stored_state(timed)
    with pytest.raises(Conflict) as refused:
        timed.grant_role(ann, "payments-approver", actor=ADMIN, reason="JIRA-1")
    assert "rule 'four-eyes-payments'" in str(refused.value)
    assert "ann@acme.org" in str(refused.value)
    assert stored_state(timed) == before
    with pytest.raises(Conflict, match="four-eyes-payments"):
        timed.create_user(
            "bob@acme.org",
            account_id=acme,
            actor=ADMIN,
            roles=["payments-approver", "payments-creator"],
        )
    assert stored_state(timed) == before
    assert not timed.grant_role(ann, "payments-creator", actor=ADMIN)  # held: no change, no check
    assert timed.grant_role(ann, "admin", actor=ADMIN)  # other roles are free


def test_a_rule_stops_holding_when_removed_and_binds_only_its_scope(
    timed: Ledger, acme: UUID
) -> None:
    ann = timed.create_user("ann@acme.org", account_id=acme, actor=ADMIN)
    timed.define_sod_rule("no-self-audit", ["Consultancy", "Auditor"], "account", actor=ADMIN)
    timed.define_sod_rule("four-eyes", ["payments-creator", "payments-approver"], actor=ADMIN)
    timed.grant_account_role(acme, "Consultancy", actor=ADMIN)
    with pytest.raises(Conflict, match="no-self-audit"):
        timed.grant_account_role(acme, "Auditor", actor=ADMIN)
    with pytest.raises(Conflict, match="no-self-audit"):
        timed.create_account("Other", actor=ADMIN, roles=["Auditor", "Consultancy"])
    timed.grant_role(ann, "payments-creator", actor=ADMIN)
    assert timed.remove_sod_rule("four-eyes", actor=ADMIN, reason="process changed")
    with pytest.raises(NotFound, match="'four-eyes' is not defined"):
        timed.remove_sod_rule("four-eyes", actor=ADMIN)
    assert timed.grant_role(ann, "payments-approver", actor=ADMIN)
    assert timed.define_sod_rule("four-eyes", ["payments-creator", "admin"], actor=ADMIN)
    with pytest.raises(Conflict, match="'four-eyes' is already defined"):
        timed.define_sod_rule("four-eyes", ["payments-creator", "admin-reader"], actor=ADMIN)


def test_a_time_limited_grant_past_its_end_does_not_conflict(
    timed: Ledger, acme: UUID, clock: Clock
) -> None:
    ann = timed.create_user("ann@acme.org", account_id=acme, actor=ADMIN)
    timed.define_sod_rule("four-eyes", ["payments-creator", "payments-approver"], actor=ADMIN)
    timed.grant_role(ann, "payments-creator", actor=ADMIN, until=START + timedelta(days=1))
    with pytest.raises(Conflict):
        timed.grant_role(ann, "payments-approver", actor=ADMIN)
    clock.moment = START + timedelta(days=1)
    assert timed.grant_role(ann, "payments-approver", actor=ADMIN)


def test_an_approved_exception_is_recorded_with_the_grant(
    timed: Ledger, rm: ReadModel, acme: UUID
) -> None:
    ann = timed.create_user("ann@acme.org", account_id=acme, actor=ADMIN)
    carol = timed.create_user("carol@acme.org", account_id=acme, actor=ADMIN)
    timed.define_sod_rule("four-eyes", ["payments-creator", "payments-approver"], actor=ADMIN)
    timed.grant_role(ann, "payments-creator", actor=ADMIN)
    assert timed.grant_role(
        ann,
        "payments-approver",
        actor=ADMIN,
        exception_approved_by="carol@acme.org",
        reason="CISO waiver W-12 (month-end cover)",
    )
    assert event_names(timed)[-2:] == ["RoleGranted", "SodExceptionApproved"]
    timed.define_sod_rule("no-self-audit", ["Consultancy", "Auditor"], "account", actor=ADMIN)
    timed.grant_account_role(acme, "Consultancy", actor=ADMIN)
    assert timed.grant_account_role(
        acme, "Auditor", actor=ADMIN, exception_approved_by="cli:ciso", reason="W-13"
    )
    rm.catch_up()
    log = rm.audit_log(ann)
    row = log.iloc[-1]
    assert (row.event, row.rule, row.role, row.approved_by, row.reason) == (
        "SodExceptionApproved",
        "four-eyes",
        "payments-approver",
        str(carol),
        "CISO waiver W-12 (month-end cover)",
    )
    assert rm.has_role(ann, "payments-approver")


@pytest.mark.parametrize(
    ("approved_by", "reason", "error", "message"),
    [
        ("cli:ciso", None, ValidationError, "an approved exception needs a reason"),
        (ADMIN, "waiver", ValidationError, "someone other than the one who grants"),
        ("ann@acme.org", "waiver", ValidationError, "someone other than the one who grants"),
        ("nobody@acme.org", "waiver", NotFound, "nobody@acme.org"),
        ("cli:\x00ciso", "waiver", ValidationError, "exception_approved_by"),
        ("x" * 300, "waiver", ValidationError, "exception_approved_by"),
        ("", "waiver", ValidationError, "exception_approved_by"),
    ],
)
def test_a_bad_approval_is_rejected_and_records_nothing(
    timed: Ledger, acme: UUID, approved_by: str, reason: str | None, error: Any, message: str
) -> None:
    ann = timed.create_user("ann@acme.org", account_id=acme, actor=ADMIN)
    timed.define_sod_rule("four-eyes", ["payments-creator", "payments-approver"], actor=ADMIN)
    timed.grant_role(ann, "payments-creator", actor=ADMIN)
    before = stored_state(timed)
    with pytest.raises(error) as refused:
        timed.grant_role(
            ann, "payments-approver", actor=ADMIN, exception_approved_by=approved_by, reason=reason
        )
    assert message in str(refused.value)
    assert stored_state(timed) == before


@pytest.mark.parametrize(
    ("name", "roles", "scope", "error", "message"),
    [
        ("r", ["admin"], "user", ValidationError, "invalid roles ['admin']"),
        ("r", ["admin", "admin"], "user", ValidationError, "two different role names"),
        ("r", "admin", "user", ValidationError, "give a list of two role names"),
        ("r", ["admin", "admin-reader", "consultant"], "user", ValidationError, "invalid roles"),
        ("r", ["admin", "admin-reader"], "tenant", ValidationError, "invalid scope 'tenant'"),
        ("r", ["admin", "no-such-role"], "user", NotFound, "'no-such-role' is not defined"),
        ("r", ["admin", "admin-reader"], "account", NotFound, "account role 'admin'"),
        ("", ["admin", "admin-reader"], "user", ValidationError, "rule name"),
        ("r\x07", ["admin", "admin-reader"], "user", ValidationError, "rule name"),
        ("r" * 81, ["admin", "admin-reader"], "user", ValidationError, "rule name"),
    ],
)
def test_a_bad_rule_is_rejected_and_records_nothing(
    timed: Ledger, name: str, roles: Any, scope: str, error: Any, message: str
) -> None:
    before = stored_state(timed)
    with pytest.raises(error) as refused:
        timed.define_sod_rule(name, roles, scope, actor=ADMIN)
    assert message in str(refused.value)
    assert stored_state(timed) == before


def test_the_report_lists_conflicts_from_before_the_rule_and_approved_exceptions(
    timed: Ledger, acme: UUID, clock: Clock
) -> None:
    ann = timed.create_user("ann@acme.org", account_id=acme, actor=ADMIN)
    bob = timed.create_user("bob@acme.org", account_id=acme, actor=ADMIN)
    timed.create_user("cid@acme.org", account_id=acme, actor=ADMIN, roles=["payments-creator"])
    timed.grant_role(ann, "payments-creator", actor=ADMIN)
    timed.grant_role(ann, "payments-approver", actor=ADMIN)  # before any rule
    clock.moment = START + timedelta(days=1)
    timed.define_sod_rule("four-eyes", ["payments-creator", "payments-approver"], actor=ADMIN)
    timed.define_sod_rule("no-self-audit", ["Consultancy", "Auditor"], "account", actor=ADMIN)
    timed.grant_account_role(acme, "Consultancy", actor=ADMIN)
    timed.grant_account_role(acme, "Auditor", actor=ADMIN, exception_approved_by="cli:ciso",
                             reason="W-13")  # fmt: skip
    timed.grant_role(bob, "payments-approver", actor=ADMIN)
    clock.moment = START + timedelta(days=2)
    timed.grant_role(bob, "payments-creator", actor=ADMIN, until=START + timedelta(days=5),
                     exception_approved_by="cli:ciso", reason="W-14")  # fmt: skip
    clock.moment = START + timedelta(days=3)
    timed.deactivate_user(ann, actor=ADMIN)
    with Audit(timed.url) as audit:
        before_rule = audit.report("sod-violations", at=START + timedelta(hours=12))
        found = audit.report("sod-violations", at=START + timedelta(days=4))
        later = audit.report("sod-violations", at=START + timedelta(days=6))
        as_json = json.loads(audit.render(["sod-violations"], "json", at=START + timedelta(days=4)))
    assert before_rule.empty
    rows = found.to_dict("records")
    assert [(r["rule"], r["holder"], r["active"]) for r in rows] == [
        ("four-eyes", "ann@acme.org", False),
        ("four-eyes", "bob@acme.org", True),
        ("no-self-audit", "Acme", True),
    ]
    assert pd.isna(rows[0]["exception_approved_by"]) and rows[0]["since"] == START
    assert (rows[1]["exception_approved_by"], rows[1]["exception_reason"]) == ("cli:ciso", "W-14")
    assert rows[1]["since"] == START + timedelta(days=2)
    assert rows[2]["roles"] == "Consultancy;Auditor" and rows[2]["account"] == "Acme"
    assert list(later.holder) == ["ann@acme.org", "Acme"]  # bob's exception ended on day 5
    assert as_json["reports"]["sod-violations"][1]["holder"] == "bob@acme.org"
    assert str(bob) == as_json["reports"]["sod-violations"][1]["holder_id"]


def test_an_approval_covers_only_the_conflict_it_was_given_for(
    timed: Ledger, acme: UUID, clock: Clock
) -> None:
    ann = timed.create_user("ann@acme.org", account_id=acme, actor=ADMIN)
    roles = ["payments-creator", "payments-approver"]
    timed.define_sod_rule("four-eyes", roles, actor=ADMIN)
    timed.grant_role(ann, "payments-creator", actor=ADMIN)
    timed.grant_role(ann, "payments-approver", actor=ADMIN, exception_approved_by="cli:ciso",
                     reason="W-15")  # fmt: skip
    clock.moment = START + timedelta(days=1)
    timed.revoke_role(ann, "payments-approver", actor=ADMIN)
    timed.remove_sod_rule("four-eyes", actor=ADMIN)
    timed.grant_role(ann, "payments-approver", actor=ADMIN)  # no rule then: nothing to approve
    clock.moment = START + timedelta(days=2)
    timed.define_sod_rule("four-eyes", roles, actor=ADMIN)
    with Audit(timed.url) as audit:
        first = audit.report("sod-violations", at=START + timedelta(hours=12))
        second = audit.report("sod-violations", at=START + timedelta(days=3))
    assert list(first.exception_approved_by) == ["cli:ciso"]
    [row] = second.to_dict("records")
    assert row["since"] == START + timedelta(days=1)
    assert pd.isna(row["exception_approved_by"]) and pd.isna(row["exception_reason"])


def test_cli_and_apply_define_remove_and_approve(url: str, tmp_path: Path) -> None:
    db = ["--db", url, "--actor", "cli:alice"]
    for role in ("payments-creator", "payments-approver"):
        cli(*db, "role", "define", role)
    cli(*db, "account", "create", "Acme")
    cli(*db, "user", "create", "ann@acme.org", "--account", "Acme", "--role", "payments-creator")
    cli(*db, "sod", "define", "four-eyes", "payments-creator", "payments-approver")
    refused = cli(*db, "user", "grant-role", "ann@acme.org", "payments-approver", code=1)
    assert "rule 'four-eyes'" in one_line(refused)
    cli(*db, "--reason", "W-1", "user", "grant-role", "ann@acme.org", "payments-approver",
        "--exception-approved-by", "cli:ciso")  # fmt: skip
    report = cli(*db, "audit", "report", "sod-violations", "--format", "json")
    [row] = json.loads(report.stdout)["reports"]["sod-violations"]
    assert (row["holder"], row["exception_approved_by"]) == ("ann@acme.org", "cli:ciso")
    csv = cli(*db, "audit", "report", "sod-violations")
    rows = [line for line in csv.stdout.splitlines() if not line.startswith("# ")]
    assert rows[0].startswith("rule,scope,roles,holder_id,holder")
    batch = tmp_path / "sod.jsonl"
    batch.write_text(
        '{"command": "define_sod_rule", "name": "r2", "roles": ["payments-approver", "admin"]}\n'
        '{"command": "create_user", "email": "bob@acme.org", "account": "Acme",'
        ' "roles": ["payments-approver", "payments-creator"]}\n'
        '{"command": "remove_sod_rule", "name": "four-eyes", "command_id": "rm-1"}\n'
        '{"command": "remove_sod_rule", "name": "four-eyes"}\n'
    )
    applied = json.loads(cli(*db, "--json", "apply", str(batch), code=1).stdout)
    assert applied["applied"] == 1 and [r["line"] for r in applied["rejected"]] == [1, 2, 4]
    assert "rule 'four-eyes'" in applied["rejected"][1]["error"]
    cli(*db, "sod", "remove", "four-eyes", code=1)
