"""Attacks on the command line and the Python API as an outsider makes them: instants at the
ends of time, numbers given as instants, names the file system cannot hold, an empty --db,
huge values echoed back. Each held attack is one that once failed."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from click.testing import Result

from ledger import Ledger, ValidationError
from ledger.audit import TITLES, Audit
from tests.helpers import cli, one_line, stored_state

ADMIN = "cli:attacker"
YEAR_1 = datetime(1, 1, 1, tzinfo=UTC)
END_OF_TIME = datetime.max.replace(tzinfo=UTC)


def run(url: str, *args: str, code: int = 0, stdin: str | None = None) -> Result:
    return cli("--db", url, "--actor", ADMIN, *args, code=code, stdin=stdin)


@pytest.fixture
def ann(led: Ledger) -> str:
    led.define_role("admin", actor=ADMIN)
    account = led.create_account("Acme", actor=ADMIN)
    led.create_user("ann@x.org", account_id=account, roles=["admin"], actor=ADMIN)
    return "ann@x.org"


def test_reports_reach_back_past_year_1(url: str, led: Ledger, ann: str) -> None:
    """A report at year 1 looks a year (or `days`) further back than there is: it reports
    what there is, not an OverflowError."""
    with Audit(url) as audit:
        for name in TITLES:
            audit.report(name, at=YEAR_1, until=YEAR_1, days=90)
            audit.report(name, at=END_OF_TIME, until=END_OF_TIME, days=36525)
        for fmt in ("json", "html"):
            audit.render(list(TITLES), fmt, at=YEAR_1, until=YEAR_1)
            audit.render(list(TITLES), fmt, at=END_OF_TIME, until=END_OF_TIME)
    for name in TITLES:
        run(url, "audit", "report", name, "--at", "0001-01-01", "--until", "0001-01-02")
    review = run(url, "audit", "report", "access-review", "--at", "9999-12-31T23:59:59Z")
    assert "ann@x.org" in review.stdout


def test_last_seen_at_the_end_of_time(url: str, led: Ledger, ann: str) -> None:
    """A second last-seen after one at 9999-12-31T23:59:59 is within the resolution: it records
    nothing and returns False (last_seen_at + resolution would be past year 9999)."""
    assert led.record_last_seen(ann, at=datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC))
    before = stored_state(led)
    assert not led.record_last_seen(ann, at=datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC))
    assert not led.record_last_seen(ann, at=datetime(2026, 1, 1, tzinfo=UTC))
    assert stored_state(led) == before
    shown = run(url, "user", "record-last-seen", ann, "--at", "9999-12-31T23:59:59.5Z")
    assert "nothing recorded" in shown.stdout
    assert stored_state(led) == before


@pytest.mark.parametrize("given", [1.5, 0, 1_772_323_200, "20260301", "1772323200", " 1e9 "])
def test_a_number_is_not_an_instant(url: str, led: Ledger, ann: str, given: object) -> None:
    """pydantic reads a number, or digits in a string, as seconds since 1970: "20260301" (a
    date without its dashes) would have been recorded as 1970-08-23."""
    before = stored_state(led)
    with pytest.raises(ValidationError, match="not a number"):
        led.record_login(ann, at=given)
    with pytest.raises(ValidationError, match="not a number"):
        led.add_annotation(
            led.resolve_user(ann) and led.account_id_for_name("Acme"),
            content="c",
            start=given,
            end="2026-03-02T00:00:00+00:00",
            source="s",
            actor=ADMIN,
        )
    assert stored_state(led) == before
    line = {"command": "record_last_seen", "user": ann, "at": given}
    result = run(url, "--json", "apply", "-", code=1, stdin=json.dumps(line) + "\n")
    assert "not a number" in json.loads(result.stdout)["rejected"][0]["error"]
    assert stored_state(led) == before


def test_a_database_name_too_long(tmp_path: Path) -> None:
    """A SQLite file name the file system cannot hold is one clear line, not an OSError
    traceback; the Python API raises ValidationError."""
    url = f"sqlite:///{tmp_path / ('a' * 300)}/ledger.db"
    for args in (["role", "list"], ["role", "define", "admin"], ["query", "users"]):
        line = one_line(run(url, *args, code=1))
        assert "invalid database URL" in line and "File name too long" in line
        assert len(line) < 300
    with pytest.raises(ValidationError, match="File name too long"):
        Ledger(url)
    good = f"sqlite:///{tmp_path / 'ledger.db'}"
    run(good, "role", "define", "admin")
    out = tmp_path / ("b" * 300) / "replay.db"
    line = one_line(
        run(good, "audit", "replay", "--until", "2030-01-01", "--out", str(out), code=1)
    )
    assert "File name too long" in line and len(line) < 300


def test_an_empty_db_option_is_no_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--db ""` names no database: refused, rather than $LEDGER_DATABASE_URL (or ./ledger.db)
    silently taking the command."""
    elsewhere = tmp_path / "elsewhere.db"
    monkeypatch.setenv("LEDGER_DATABASE_URL", f"sqlite:///{elsewhere}")
    monkeypatch.chdir(tmp_path)
    line = one_line(run("", "role", "define", "admin", code=1))
    assert "invalid database URL ''" in line
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValidationError, match="invalid database URL"):
        Ledger(url="")


def test_huge_values_are_echoed_cut(url: str, led: Ledger, ann: str) -> None:
    """A user, account or instant that is not found or not understood is named cut short."""
    huge = "a" * 100_000
    for args in (
        ["query", "user", huge],
        ["query", "account", huge],
        ["user", "deactivate", huge],
        ["account", "close", huge],
        ["query", "audit-log", huge],
    ):
        assert len(one_line(run(url, *args, code=1))) < 300, args
    for args in (["--tz", huge, "role", "list"], ["user", "record-login", ann, "--at", huge]):
        result = run(url, *args, code=2)
        assert len(result.stderr) < 600, args


def test_names_are_shown_as_they_are_not_as_markup(url: str, led: Ledger) -> None:
    """Rich read "[bold]boss[/bold]" as markup: the role was listed as "boss", an account
    "[i]Evil[/i] Corp" as "Evil Corp". Every output shows a name as it is stored."""
    role, account = "[bold]boss[/bold]", "[i]Evil[/i] Corp"
    run(url, "role", "define", role, "[red]the boss")
    run(url, "account", "create", account)
    run(url, "user", "create", "ev@x.org", "--account", account, "--username", "[b]zed")
    assert role in run(url, "user", "grant-role", "ev@x.org", role).stdout
    assert (
        role in run(url, "role", "list").stdout
        and "[red]the boss" in run(url, "role", "list").stdout
    )
    assert account in run(url, "query", "accounts").stdout
    assert "[b]zed" in run(url, "query", "user", "ev@x.org").stdout
    assert role in run(url, "query", "roles", "ev@x.org").stdout
    line = json.dumps({"command": "grant_role", "user": "ev@x.org", "role": "[bold]nope"})
    assert "'[bold]nope'" in run(url, "apply", "-", code=1, stdin=line + "\n").stdout


def test_control_characters_in_a_file_name_are_escaped(tmp_path: Path, url: str) -> None:
    """A file name given with an escape sequence or a newline is named with them escaped: the
    terminal never acts on them, and an error stays one line."""
    name = "x\x1b[2Jy\nz"
    missing = f"sqlite:///{tmp_path / name}.db"
    line = one_line(run(missing, "query", "users", code=1))
    assert "x\\x1b[2Jy\\nz" in line and "\x1b" not in line
    run(url, "role", "define", "admin")
    out = tmp_path / f"r{name}.db"
    result = run(url, "audit", "replay", "--until", "2030-01-01", "--out", str(out))
    assert "\x1b" not in result.stdout and "rx\\x1b[2Jy\\nz.db" in result.stdout
    report = tmp_path / name
    result = run(url, "audit", "report", "access-review", "--out", str(report))
    assert "\x1b" not in result.stderr and report.exists()


def test_odd_arguments_to_the_read_models_are_ledger_errors(
    url: str, led: Ledger, ann: str
) -> None:
    """A source no annotation can have (a lone surrogate) matches nothing, rather than an
    encoding error; `effective` other than True or False is a ValidationError, not a
    KeyError or TypeError."""
    from projections import ReadModel

    account = led.account_id_for_name("Acme")
    led.add_annotation(
        account,
        content="c",
        start=datetime(2026, 1, 1, tzinfo=UTC),
        end=datetime(2026, 1, 2, tzinfo=UTC),
        source="s",
        actor=ADMIN,
    )
    rm = ReadModel(url)
    try:
        rm.catch_up()
        assert rm.search_annotations(account, source="\ud800") == []
        assert rm.search_annotations(account, source=["\ud800", "x\x00"]) == []
        assert len(rm.search_annotations(account, source=["\ud800", "s"])) == 1
        for effective in (None, [], "yes", 1):
            with pytest.raises(ValidationError, match="effective"):
                rm.roles(ann, effective=effective)
    finally:
        rm.close()


def test_a_file_that_begins_with_a_byte_order_mark(url: str, tmp_path: Path) -> None:
    """Editors on Windows begin a UTF-8 file with a byte order mark: its first line is a
    command like the others (it was rejected as "Unexpected UTF-8 BOM")."""
    path = tmp_path / "commands.jsonl"
    path.write_bytes(
        b'\xef\xbb\xbf{"command": "define_role", "name": "admin"}\r\n'
        b'{"command": "define_role", "name": "auditor"}\r\n'
    )
    assert "applied 2, unchanged 0, rejected 0" in run(url, "apply", str(path)).stdout
    assert "admin" in run(url, "role", "list").stdout


def test_a_postgresql_database_that_does_not_exist(postgres_server: str) -> None:
    """A command to a database the server does not have says so at once, without the URL's
    password; it waited 30 s for eventsourcing's pool and said only that it got no
    connection."""
    info = psycopg.conninfo.conninfo_to_dict(postgres_server)
    url = (
        f"postgresql+psycopg://{info.get('user', 'postgres')}:s3cret@"
        f"{info.get('host', '127.0.0.1')}:{info.get('port', 5432)}/ledger_no_such_database"
    )
    started = time.monotonic()
    line = one_line(run(url, "role", "define", "admin", code=1))
    assert time.monotonic() - started < 15
    assert 'database "ledger_no_such_database" does not exist' in line
    assert "s3cret" not in line


def test_csv_reports_write_year_1_with_four_digits(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    led = Ledger(url, clock=lambda: datetime(1, 1, 1, 10, 29, 20, tzinfo=UTC))
    acme = led.create_account("Acme", actor=ADMIN)
    led.record_login(led.create_user("ann@acme.org", account_id=acme, actor=ADMIN))
    led.close()
    with Audit(url) as audit:
        text = audit.render(["access-review"], "csv", at=datetime(1, 1, 2, tzinfo=UTC))
    rows = [line for line in text.splitlines() if not line.startswith("# ")]  # the evidence
    assert rows[1].endswith(",0001-01-01T10:29:20+0000")


def test_a_failed_login_from_the_cli_rejects_bad_input_and_records_nothing(
    url: str, led: Ledger, ann: str
) -> None:
    before = stored_state(led)
    for bad in (["--ip", "999.1.1.1"], ["--ip", "10.0.0.1\x00"], ["--at", "not a time"]):
        result = run(
            url,
            "user",
            "record-failed-login",
            ann,
            "--reason-kind",
            "wrong-password",
            *bad,
            code=1 if bad[0] == "--ip" else 2,
        )
        assert "Traceback" not in result.stderr
    result = run(url, "user", "record-failed-login", ann, "--reason-kind", "bad", code=2)
    assert "reason-kind" in result.stderr
    assert stored_state(led) == before
    run(
        url,
        "user",
        "record-failed-login",
        ann,
        "--reason-kind",
        "wrong-password",
        "--ip",
        "10.0.0.1",
    )
    assert stored_state(led) != before
