"""`ledger audit export`: every event type as OCSF 1.8.0 checked against the class schema's
required attributes, object constraints and attribute types; JSON lines and CSV; --after,
--until and --out; erased personal data shows as erased."""

from __future__ import annotations

import csv
import io
import ipaddress
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from ledger import Ledger, PermissionDenied, ValidationError
from ledger.audit import export as exporting
from ledger.audit import ocsf
from ledger.domain.titles import TITLES
from tests.conftest import ADMIN
from tests.helpers import cli, one_line

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ERASED_EMAIL = "gone@acme.org"
EXTENDED_UNTIL = T0 + timedelta(days=30)
MIRRORED_AT = datetime(2025, 12, 24, 9, 30, tzinfo=UTC)

# OCSF 1.8.0 (github.com/ocsf/ocsf-schema, tag 1.8.0): base_event's required attributes, each
# class's, the activity ids each class defines (99 Other from the base), objects' constraints.
BASE_REQUIRED = {
    "activity_id": int,
    "category_uid": int,
    "class_uid": int,
    "metadata": dict,
    "severity_id": int,
    "time": int,
    "type_uid": int,
}
CLASS_REQUIRED = {3001: {"user": dict}, 3002: {"user": dict}, 3004: {"entity": dict}}
ACTIVITIES = {3001: {*range(1, 13), 99}, 3002: {*range(1, 8), 99}, 3004: {*range(1, 14), 99}}
BASE_ATTRIBUTES = {
    *BASE_REQUIRED,
    "activity_name", "category_name", "class_name", "count", "duration", "end_time",
    "enrichments", "message", "observables", "raw_data", "severity", "start_time", "status",
    "status_code", "status_detail", "status_id", "timezone_offset", "type_name", "unmapped",
    "actor", "device", "http_request", "src_endpoint",
}  # fmt: skip
CLASS_ATTRIBUTES = {
    3001: {"user", "user_result", "policies", "policy", "auth_factors"},
    3002: {"user", "dst_endpoint", "service", "session", "is_mfa", "logon_type", "logon_type_id"},
    3004: {"entity", "entity_result", "comment", "access_list", "access_mask"},
}
AT_LEAST_ONE = {
    "user": {"account", "name", "uid"},
    "entity": {"name", "uid", "device", "group", "org", "policy", "user"},
    "policy": {"name", "type", "uid"},
    "actor": {"process", "user", "invoked_by", "session", "app_name", "app_uid"},
    "product": {"name", "uid"},
}
STRINGS = {"name", "uid", "type", "email_addr", "message", "activity_name", "class_name"}


def check_ocsf(event: dict[str, Any]) -> None:
    """Fails naming the attribute where `event` breaks the OCSF 1.8.0 class schema."""
    class_uid = event["class_uid"]
    for name, kind in {**BASE_REQUIRED, **CLASS_REQUIRED[class_uid]}.items():
        assert isinstance(event.get(name), kind), (name, event)
    assert set(event) <= BASE_ATTRIBUTES | CLASS_ATTRIBUTES[class_uid], event
    assert event["category_uid"] == 3
    assert event["activity_id"] in ACTIVITIES[class_uid]
    assert event["type_uid"] == class_uid * 100 + event["activity_id"]
    assert event["severity_id"] in range(7) or event["severity_id"] == 99
    assert event["status_id"] in (0, 1, 2, 99)
    metadata = event["metadata"]
    assert isinstance(metadata["version"], str) and isinstance(metadata["product"], dict)
    assert isinstance(metadata["sequence"], int) and isinstance(metadata["logged_time"], int)
    for tag in metadata["tags"]:
        assert set(tag) == {"name", "value"} and all(isinstance(v, str) for v in tag.values())
    _check_objects(event)


def _check_objects(value: Any, name: str = "") -> None:
    if name in ("unmapped", "data"):  # free-form by the schema
        return
    if isinstance(value, dict):
        if name in AT_LEAST_ONE:
            assert AT_LEAST_ONE[name] & set(value), (name, value)
        for key, item in value.items():
            if key == "email_addr":
                assert isinstance(item, str) and "@" in item, item
            elif key == "ip":
                ipaddress.ip_address(item)
            elif key in STRINGS:
                assert isinstance(item, str), (key, item)
            _check_objects(item, key)
    elif isinstance(value, list):
        for item in value:
            _check_objects(item, {"policies": "policy"}.get(name, name))


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(hours=1)
        return self.now


@pytest.fixture
def history(url: str) -> Ledger:
    """One event of every type the ledger records, one an hour from T0."""
    clock = Clock()
    led = Ledger(url, clock=clock)
    for role in ("admin", "consultant"):
        led.define_role(role, "a role", actor=ADMIN)
    led.define_account_role("Consultancy", actor=ADMIN)
    consultancy = led.create_account("Consult BV", actor=ADMIN, roles=["Consultancy"])
    acme = led.create_account(
        "Acme", actor=ADMIN, primary_color="#112233", secondary_color="#445566"
    )
    led.update_account(acme, actor=ADMIN, logo_url="https://acme.example/logo.png")
    led.set_consultancy(acme, consultancy, actor=ADMIN)
    led.revoke_account_role(consultancy, "Consultancy", actor=ADMIN)
    led.grant_account_role(consultancy, "Consultancy", actor=ADMIN, reason="JIRA-7")
    ann = led.create_user("ann@acme.org", account_id=acme, actor=ADMIN, password="s3cret-pass")
    gone = led.create_user(ERASED_EMAIL, account_id=acme, actor=ADMIN, roles=["admin"])
    led.update_user(ann, actor=ADMIN, username="annie")
    led.grant_role(ann, "consultant", actor=ADMIN, reason="JIRA-8", command_id="c-1")
    led.revoke_role(ann, "consultant", actor=ADMIN)
    led.record_login(ann, ip="192.0.2.7")
    led.record_failed_login(ann, ip="2001:db8::1", reason_kind="wrong-password")
    led.record_last_seen(ann)
    led.set_password(ann, "an0ther-pass", actor=ADMIN)
    led.deactivate_user(ann, actor=ADMIN, reason="leave")
    led.reactivate_user(ann, actor=ADMIN)
    led.move_user(ann, consultancy, actor=ADMIN, reason="secondment")
    led.move_user(ann, acme, actor=ADMIN)
    led.describe_role("admin", "platform administrator", actor=ADMIN)
    led.describe_account_role("Consultancy", "advises client accounts", actor=ADMIN)
    led.record_login(gone, ip="192.0.2.8")
    note = led.add_annotation(
        acme, content="maintenance", start=T0, end=T0 + timedelta(days=1), source="ops", actor=ADMIN
    )
    led.remove_annotation(acme, note, actor=ADMIN)
    led.erase_user(gone, actor=ADMIN, reason="GDPR")
    with pytest.raises(PermissionDenied):  # journalled as AccessDenied
        led.grant_role(ann, "admin", actor=ADMIN, as_user=ann)
    led.close_account(acme, actor=ADMIN)
    governance(led, clock, consultancy)
    return led


def governance(led: Ledger, clock: Clock, consultancy: UUID) -> None:
    """Separation-of-duties rules and exceptions, time-limited grants extended then expired,
    and an entry of a mirrored system's audit log the ledger could not interpret."""
    led.define_role("auditor", actor=ADMIN)
    led.define_account_role("Auditor", actor=ADMIN)
    led.define_sod_rule("maker-checker", ["consultant", "auditor"], actor=ADMIN)
    led.define_sod_rule("consult-or-audit", ["Consultancy", "Auditor"], "account", actor=ADMIN)
    bob = led.create_user(
        "bob@consult.org", account_id=consultancy, actor=ADMIN, roles=["consultant"]
    )
    week = clock.now + timedelta(days=7)
    led.grant_role(
        bob,
        "auditor",
        actor=ADMIN,
        until=week,
        exception_approved_by="cli:risk-officer",
        reason="J-9",
    )
    led.grant_account_role(
        consultancy,
        "Auditor",
        actor=ADMIN,
        until=week,
        exception_approved_by="cli:risk-officer",
        reason="J-10",
    )
    led.extend_grant(bob, "auditor", EXTENDED_UNTIL, actor=ADMIN)
    led.extend_grant(consultancy, "Auditor", EXTENDED_UNTIL, actor=ADMIN)
    clock.now = EXTENDED_UNTIL + timedelta(days=3)
    assert led.expire_grants(actor=ADMIN) == 2
    led.remove_sod_rule("maker-checker", actor=ADMIN)
    led.record_unrecognised_entry(
        "flexmeasures",
        7,
        "Bulk change by script",
        MIRRORED_AT,
        user=bob,
        account=consultancy,
        actor=ADMIN,
    )
    reviews(led, clock, consultancy)


def reviews(led: Ledger, clock: Clock, consultancy: UUID) -> None:
    """An access-review campaign over the consultants: one item certified, one revoked, closed."""
    reviewer = led.create_user("rita@consult.org", account_id=consultancy, actor=ADMIN)
    led.create_user("carl@consult.org", account_id=consultancy, actor=ADMIN, roles=["consultant"])
    due = clock.now + timedelta(days=30)
    led.start_review("q1", scope={"roles": ["consultant"]}, reviewer=reviewer, due=due, actor=ADMIN)
    led.certify("q1#1", reviewer=reviewer, reason="still consulting", actor=ADMIN)
    led.revoke_via_review("q1#2", reviewer=reviewer, reason="left the project", actor=ADMIN)
    led.close_review("q1", actor=ADMIN)


def exported(led: Ledger, *args: str) -> list[dict[str, Any]]:
    result = cli("--db", led.url, "audit", "export", *args)
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_every_event_type_is_valid_ocsf(history: Ledger) -> None:
    events = exported(history, "--format", "ocsf")
    for event in events:
        check_ocsf(event)
    by_code = {e["metadata"]["event_code"]: e for e in events}
    classes = {code: (e["class_uid"], e["activity_id"]) for code, e in by_code.items()}
    assert classes == {
        "RoleDefined": (3004, 1),
        "AccountRoleDefined": (3004, 1),
        "AccountCreated": (3004, 1),
        "AccountUpdated": (3004, 3),
        "ConsultancySet": (3004, 3),
        "AccountRoleRevoked": (3004, 3),
        "AccountRoleGranted": (3004, 3),
        "UserJoined": (3004, 3),
        "UserLeft": (3004, 3),
        "UserMoved": (3004, 3),
        "RoleDescribed": (3004, 3),
        "AccountRoleDescribed": (3004, 3),
        "UserCreated": (3001, 1),
        "UserUpdated": (3001, 99),
        "RoleGranted": (3001, 7),
        "RoleRevoked": (3001, 8),
        "LoginRecorded": (3002, 1),
        "LoginFailed": (3002, 1),
        "LastSeenRecorded": (3004, 3),
        "PasswordChanged": (3001, 3),
        "UserDeactivated": (3001, 5),
        "UserReactivated": (3001, 2),
        "AnnotationAdded": (3004, 1),
        "AnnotationRemoved": (3004, 4),
        "UserErased": (3001, 6),
        "AccountClosed": (3004, 11),
        "PolicyStarted": (3004, 1),
        "SodRuleDefined": (3004, 1),
        "SodRuleRemoved": (3004, 4),
        "SodExceptionApproved": (3004, 1),
        "AccountSodExceptionApproved": (3004, 1),
        "RoleGrantExtended": (3004, 3),
        "AccountRoleGrantExtended": (3004, 3),
        "RoleExpired": (3001, 8),
        "AccountRoleExpired": (3004, 3),
        "SourceRegistered": (3004, 1),
        "UnrecognisedEntryRecorded": (3004, 1),
        "AccessDenied": (3004, 1),
        "ReviewStarted": (3004, 1),
        "ReviewItemCertified": (3004, 3),
        "ReviewItemRevoked": (3004, 3),
        "ReviewClosed": (3004, 3),
    }
    grant = next(e for e in events if e["metadata"].get("correlation_uid") == "c-1")
    assert grant["policies"] == [{"name": "consultant", "type": "Role"}]
    assert grant["actor"] == {"user": {"name": ADMIN}}
    assert grant["metadata"]["correlation_uid"] == "c-1"
    assert by_code["LoginFailed"]["status_id"] == 2
    assert by_code["LoginFailed"]["status_detail"] == "wrong-password"
    assert by_code["LoginFailed"]["src_endpoint"] == {"ip": "2001:db8::1"}
    ann = next(e for e in events if e["metadata"]["event_code"] == "UserCreated")
    assert ann["user"]["email_addr"] == "ann@acme.org" and ann["user"]["name"] == "ann"


def test_no_event_type_falls_to_other_unless_listed_with_a_reason(history: Ledger) -> None:
    events = exported(history, "--format", "ocsf")
    recorded = {e["metadata"]["event_code"] for e in events}
    assert {event_class.__name__ for event_class in TITLES} <= recorded  # every type is here
    other = {e["metadata"]["event_code"] for e in events if e["activity_id"] == 99}
    assert other == {"UserUpdated"} == set(ocsf.DELIBERATELY_OTHER)
    assert all(reason.strip() for reason in ocsf.DELIBERATELY_OTHER.values())


def test_governance_events_name_what_they_changed(history: Ledger) -> None:
    by_code = {e["metadata"]["event_code"]: e for e in exported(history, "--format", "ocsf")}
    bob = by_code["RoleGrantExtended"]["entity"]["uid"]
    consultancy = by_code["AccountRoleGrantExtended"]["entity"]["uid"]
    assert by_code["RoleGrantExtended"]["entity"]["policy"] == {"name": "auditor", "type": "Role"}
    assert by_code["RoleGrantExtended"]["entity"]["data"]["until"] == EXTENDED_UNTIL.isoformat()
    assert by_code["AccountRoleGrantExtended"]["entity"]["policy"]["type"] == "AccountRole"
    exception = by_code["SodExceptionApproved"]["entity"]
    assert exception["type"] == "SodException" and exception["name"] == "maker-checker"
    assert (
        exception["user"] == {"uid": bob} and exception["data"]["approved_by"] == "cli:risk-officer"
    )
    assert by_code["AccountSodExceptionApproved"]["entity"]["org"] == {"uid": consultancy}
    assert by_code["SodRuleRemoved"]["entity"] == {"name": "maker-checker", "type": "SodRule"}
    entry = by_code["UnrecognisedEntryRecorded"]["entity"]
    assert entry["uid"] == "7" and entry["type"] == "ExternalAuditEntry"
    assert entry["user"] == {"uid": bob} and entry["org"] == {"uid": consultancy}
    assert entry["data"]["text"] == "Bulk change by script"
    assert by_code["ReviewItemRevoked"]["entity"] == {
        "uid": "q1#2",
        "name": "q1#2",
        "type": "ReviewItem",
        "data": {
            "item": "q1#2",
            "reviewer": by_code["ReviewItemRevoked"]["entity"]["data"]["reviewer"],
            "role_revoked": True,
        },
    }
    assert by_code["ReviewStarted"]["entity"]["name"] == "q1"


def test_an_expiry_is_timed_when_access_ended_and_logged_when_recorded(history: Ledger) -> None:
    by_code = {e["metadata"]["event_code"]: e for e in exported(history, "--format", "ocsf")}
    for code in ("RoleExpired", "AccountRoleExpired", "UnrecognisedEntryRecorded"):
        event = by_code[code]
        occurred = MIRRORED_AT if code == "UnrecognisedEntryRecorded" else EXTENDED_UNTIL
        assert event["time"] == int(occurred.timestamp() * 1000), code
        assert event["metadata"]["logged_time"] - event["time"] >= 3 * 24 * 3600 * 1000, code
    assert by_code["RoleExpired"]["policies"] == [{"name": "auditor", "type": "Role"}]


def test_positions_and_chain_links_are_in_the_metadata(history: Ledger) -> None:
    events = exported(history)
    links = {
        row["position"]: row["hash"]
        for row in history.side.select_all("SELECT position, hash FROM ledger_chain", ())
    }
    assert [e["metadata"]["sequence"] for e in events] == sorted(links)
    for event in events:
        tags = {tag["name"]: tag["value"] for tag in event["metadata"]["tags"]}
        assert tags["chain_link"] == links[event["metadata"]["sequence"]]


def test_erased_personal_data_shows_as_erased(history: Ledger) -> None:
    for fmt in ("ocsf", "jsonl", "csv"):
        text = cli("--db", history.url, "audit", "export", "--format", fmt).stdout
        assert ERASED_EMAIL not in text and "192.0.2.8" not in text
        assert "[erased]" in text
        assert "s3cret-pass" not in text and "an0ther-pass" not in text
    created = [e for e in exported(history) if e["metadata"]["event_code"] == "UserCreated"]
    assert created[1]["user"]["name"] == "[erased]" and "email_addr" not in created[1]["user"]


def test_after_and_until_select_the_events(history: Ledger) -> None:
    everything = exported(history, "--format", "jsonl")
    assert [e["position"] for e in exported(history, "--format", "jsonl", "--after", "5")] == [
        e["position"] for e in everything[5:]
    ]
    until = (T0 + timedelta(hours=3)).isoformat()
    assert [e["position"] for e in exported(history, "--format", "jsonl", "--until", until)] == [
        1,
        2,
        3,
    ]
    last = everything[-1]["position"]
    assert exported(history, "--after", str(last)) == []


def test_csv_has_a_header_and_one_row_an_event(history: Ledger) -> None:
    text = cli("--db", history.url, "audit", "export", "--format", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == list(exporting.CSV_COLUMNS)
    assert len(rows) == history.recorder.max_notification_id()
    grant = next(row for row in rows if row["command_id"] == "c-1")
    assert json.loads(grant["details"]) == {"role": "consultant", "until": None}
    assert grant["reason"] == "JIRA-8" and grant["actor"] == ADMIN


def test_out_writes_a_new_file_and_never_overwrites(history: Ledger, tmp_path: Path) -> None:
    out = tmp_path / "events.ocsf.jsonl"
    result = cli("--db", history.url, "audit", "export", "--out", str(out))
    count = history.recorder.max_notification_id()
    assert f"exported {count} events (positions 1 to {count}) as ocsf" in result.stderr
    assert len(out.read_text().splitlines()) == count
    again = cli("--db", history.url, "audit", "export", "--out", str(out), code=1)
    assert f"invalid out {str(out)!r}: it exists" in one_line(again)
    assert len(out.read_text().splitlines()) == count
    assert not list(tmp_path.glob("*.partial")) and not list(tmp_path.glob(".*.partial"))


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("--format", "xml"), 2, "'xml' is not one of"),
        (("--after", "-1"), 2, "-1 is not in the range x>=0"),
        (("--after", "1\x00"), 2, "is not a valid integer"),
        (("--until", "yesterday"), 2, "yesterday"),
    ],
)
def test_bad_arguments_are_refused(
    history: Ledger, tmp_path: Path, args: tuple[str, ...], code: int, message: str
) -> None:
    out = tmp_path / "out.jsonl"
    result = cli("--db", history.url, "audit", "export", *args, "--out", str(out), code=code)
    assert message in result.stderr
    assert not out.exists()


def test_the_python_api_refuses_bad_arguments(history: Ledger) -> None:
    with pytest.raises(ValidationError, match="invalid format 'xml'"):
        exporting.export(history, io.StringIO(), "xml")
    with pytest.raises(ValidationError, match="invalid after -3"):
        exporting.export(history, io.StringIO(), "ocsf", after=-3)


def test_an_empty_log_exports_nothing(led: Ledger) -> None:
    result = cli("--db", led.url, "audit", "export", "--format", "csv")
    assert result.stdout.splitlines() == [",".join(exporting.CSV_COLUMNS)]
    assert "exported 0 events as csv" in result.stderr


# what a user may choose that a spreadsheet would run: led by = + - @, by a tab or a CR
FORMULAS = ("=cmd|' /C calc'!A0", "+1,=2", "-x", "@SUM(1);-2", "\t=1+1", "\r=2+2")


def formula_cells(text: str) -> list[str]:
    """The cells of a CSV a spreadsheet would run as formulas, its lines split at , or ;
    (quotes honoured), or split naively: at every line end, then , ; or tab, quotes ignored."""
    found = []
    for delimiter in ",;":
        for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter):
            found += [cell for cell in row if cell.lstrip().startswith(("=", "+", "-", "@"))]
    naive = re.split(r"[\r\n,;\t]", text)
    found += [part for part in naive if part.lstrip(' "').startswith(("=", "+", "-", "@"))]
    return found


def test_csv_cells_never_run_as_formulas_as_in_the_reports(led: Ledger) -> None:
    """Role and account names, annotations, reasons and command ids a user chose: in the
    export's CSV no cell starts a formula (a ' before it, as the reports do); OCSF keeps them."""
    acme = led.create_account("Acme", actor=ADMIN)
    for n, text in enumerate(FORMULAS):
        led.define_role(text, actor=ADMIN, reason=text, command_id=text)
        led.create_account(text, actor=ADMIN)
        led.add_annotation(
            acme,
            content=text.replace("\r", ";"),  # an annotation holds no CR
            start=T0,
            end=T0 + timedelta(hours=n + 1),
            source=text,
            actor=ADMIN,
        )
    led.create_account("Lines", actor=ADMIN, reason='ok\n=HYPERLINK("x";"y")\n-1')
    text = cli("--db", led.url, "audit", "export", "--format", "csv").stdout
    assert formula_cells(text) == []
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    # the details' JSON reads back as recorded: escaped, not marked with a '
    contents = [
        json.loads(row["details"])["content"] for row in rows if row["event"] == "AnnotationAdded"
    ]
    assert contents == [text.replace("\r", ";") for text in FORMULAS]
    # (a reason is kept without the whitespace around it)
    reasons = {row["reason"] for row in rows if row["event"] == "RoleDefined"}
    assert reasons == {
        "'=cmd|' /C calc'!A0",
        "'+1,'=2",
        "'-x",
        "'@SUM(1);'-2",
        "'=1+1",
        "'=2+2",
    }
    assert "'=cmd|' /C calc'!A0" in text
    out = io.StringIO()
    exporting.export(led, out, "csv")
    assert out.getvalue() == text
    names = [
        line["entity"]["name"]
        for line in exported(led, "--format", "ocsf")
        if line["metadata"]["event_code"] == "RoleDefined"
    ]
    assert names == [text.strip() for text in FORMULAS]  # names are kept stripped too
