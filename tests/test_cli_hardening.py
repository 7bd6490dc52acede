"""The command line tells the truth about its database and its input: a database that does not
exist is not made up, a read-only one is read and never written, a full disk is one line, and
every instant is read one way (dates, --tz, out-of-range values)."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import click
import psycopg
import pytest
from click.testing import CliRunner, Result

from ledger import Ledger, ValidationError
from ledger.cli import main
from tests.helpers import cli, one_line, remount_read_only
from tests.helpers import tmpfs as small_file_system
from tests.test_cli import Shell

INSTANT_OPTIONS = {"at", "after", "before", "beliefs_after", "beliefs_before", "since", "until"}
INSTANT_OPTIONS |= {"start", "end", "belief_time"}


def run(*args: str, code: int = 0, env: dict[str, str] | None = None) -> Result:
    return cli("--actor", "cli:tester", *args, code=code, env=env)


def event_count(url: str) -> int:
    led = Ledger(url, read_only=True)
    try:
        return led.recorder.max_notification_id() or 0
    finally:
        led.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_ledger(path: Path) -> str:
    """A small projected ledger in the SQLite file `path`, its log checkpointed into it."""
    url = f"sqlite:///{path}"
    sh = Shell(url)
    sh("role", "define", "admin", "Full access")
    sh("account", "create", "Acme")
    sh("user", "create", "ann@acme.org", "--account", "Acme", "--role", "admin")
    sh("user", "record-login", "ann@acme.org", "--at", "2026-03-01T09:00:00Z")
    sh("project")
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return url


READ_COMMANDS = [
    ("query", "users"),
    ("query", "roles", "ann@acme.org"),
    ("query", "audit-log"),
    ("role", "list"),
    ("audit", "verify"),
    ("audit", "digest"),
    ("audit", "check"),
    ("audit", "report", "access-review"),
]


def assert_reads_and_refuses_writes(url: str, database: Path) -> None:
    before, events = digest(database), event_count(url)
    for command in READ_COMMANDS:
        run("--db", url, *command)
    assert "ann@acme.org" in run("--db", url, "query", "users").stdout
    assert "intact" in run("--db", url, "audit", "verify").stdout
    refused = one_line(run("--db", url, "role", "define", "auditor", code=1))
    assert "read-only" in refused and str(database) in refused
    refused = one_line(run("--db", url, "user", "deactivate", "ann@acme.org", code=1))
    assert "read-only" in refused
    assert one_line(run("--db", url, "rebuild", code=1)).startswith("error:")
    assert digest(database) == before and event_count(url) == events


# -- item 15: no database is made up ------------------------------------------------------------


@pytest.mark.parametrize(
    "command", [("query", "users"), ("role", "list"), ("audit", "verify"), ("project",)]
)
def test_reading_a_database_that_does_not_exist_creates_nothing(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    typo = tmp_path / "typo.db"
    message = one_line(run("--db", f"sqlite:///{typo}", *command, code=1))
    assert "no ledger" in message and str(typo) in message
    assert not typo.exists()


def test_serve_and_queries_in_an_empty_folder_refuse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LEDGER_DATABASE_URL", raising=False)
    served = serve("serve", cwd=tmp_path)
    assert served.returncode == 1 and "no ledger" in served.stderr, served.stderr
    assert "no ledger" in one_line(run("query", "users", code=1))
    assert list(tmp_path.iterdir()) == []
    run("role", "define", "admin")  # a command that records sets a ledger up
    assert (tmp_path / "ledger.db").exists()
    assert "admin" in run("role", "list").stdout


def test_a_sqlite_file_without_a_ledger_is_refused_and_left_alone(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with closing(sqlite3.connect(other)) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
    before = digest(other)
    assert "no ledger" in one_line(run("--db", f"sqlite:///{other}", "query", "users", code=1))
    assert digest(other) == before


def test_a_postgres_database_without_the_ledger_tables_is_refused(
    postgres_server: str, tmp_path: Path
) -> None:
    from tests.conftest import create_pg_database

    url, drop = create_pg_database(postgres_server)
    try:
        for command in [("query", "users"), ("audit", "verify"), ("role", "list")]:
            assert "no ledger" in one_line(run("--db", url, *command, code=1))
        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
            tables = conn.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
            ).fetchone()
        assert tables == (0,)
        run("--db", url, "role", "define", "admin")  # a write sets the ledger up
        assert "admin" in run("--db", url, "role", "list").stdout
    finally:
        drop()


def test_a_replay_file_is_queried_as_it_stands(tmp_path: Path) -> None:
    url = build_ledger(tmp_path / "ledger.db")
    replay = tmp_path / "replay.db"
    run("--db", url, "audit", "replay", "--until", "2100-01-01", "--out", str(replay))
    with closing(sqlite3.connect(replay)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = digest(replay)
    replayed = f"sqlite:///{replay}"
    assert "ann@acme.org" in run("--db", replayed, "query", "users").stdout
    assert "admin" in run("--db", replayed, "query", "roles", "ann@acme.org").stdout
    assert "point-in-time replay" in one_line(run("--db", replayed, "audit", "verify", code=1))
    assert digest(replay) == before


def test_the_python_api_can_refuse_to_create(tmp_path: Path) -> None:
    from ledger import NotFound

    with pytest.raises(NotFound, match="no ledger"):
        Ledger(f"sqlite:///{tmp_path / 'none.db'}", create=False)
    assert not (tmp_path / "none.db").exists()


# -- item 11: read-only databases and full disks ------------------------------------------------


def test_a_read_only_open_reads_everything_and_writes_nothing(tmp_path: Path) -> None:
    original = tmp_path / "live" / "ledger.db"
    original.parent.mkdir()
    build_ledger(original)
    copy = tmp_path / "copy" / "ledger.db"
    copy.parent.mkdir()
    shutil.copy(original, copy)
    copy.chmod(0o444)
    copy.parent.chmod(0o555)  # ignored by root: the URL's mode=ro is what makes it read-only
    try:
        for url in (f"sqlite:///file:{copy}?mode=ro&uri=true", f"sqlite:///{copy}?mode=ro"):
            assert_reads_and_refuses_writes(url, copy)
    finally:
        copy.parent.chmod(0o755)


def test_read_only_read_models_that_lag_say_so(tmp_path: Path) -> None:
    database = tmp_path / "ledger.db"
    url = build_ledger(database)
    run("--db", url, "role", "define", "auditor")  # recorded, not yet projected
    read_only = f"sqlite:///{database}?mode=ro"
    result = run("--db", read_only, "role", "list")
    assert "admin" in result.stdout and "auditor" not in result.stdout
    assert "lag behind the log (1 not projected)" in one_line(result)
    report = run("--db", read_only, "audit", "report", "access-review", code=1)
    assert "cannot be brought up to date" in one_line(report)


def fill(path: Path) -> None:
    """Write zeros to `path` until its file system is full."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(descriptor, b"\0" * 4096)
    except OSError as error:
        assert error.errno == errno.ENOSPC
    finally:
        os.close(descriptor)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A small tmpfs of our own (root only): a read-only file system, a full disk."""
    with small_file_system(tmp_path / "mnt") as mount_point:
        yield mount_point


def test_a_ledger_on_a_read_only_file_system(tmp_path: Path, tmpfs: Path) -> None:
    database = tmpfs / "ledger.db"
    build_ledger(database)
    remount_read_only(tmpfs)
    assert_reads_and_refuses_writes(f"sqlite:///{database}", database)
    assert sorted(p.name for p in tmpfs.iterdir()) == ["ledger.db"]


def test_a_full_disk_is_one_line_naming_the_database(tmp_path: Path, tmpfs: Path) -> None:
    database = tmpfs / "ledger.db"
    url = build_ledger(database)
    events = event_count(url)
    filler = tmpfs / "filler"
    fill(filler)
    for command in [("role", "define", "auditor"), ("account", "create", "Globex")]:
        message = one_line(run("--db", url, *command, code=1))
        assert message.startswith("error: disk full") and str(database) in message
    filler.unlink()
    assert event_count(url) == events


# -- item 10 (CLI types) ------------------------------------------------------------------------


def serve(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`ledger ARGS` as a process; one that starts serving fails the test (and is stopped)."""
    script = Path(sys.executable).parent / "ledger"
    try:
        return subprocess.run(
            [str(script), *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=20,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"ledger {' '.join(args)} started serving")


def test_serve_port_out_of_range_is_a_usage_error(tmp_path: Path) -> None:
    url = build_ledger(tmp_path / "ledger.db")
    for port in ("99999", "0", "-1", "http"):
        result = serve("--db", url, "serve", "--port", port, cwd=tmp_path)
        assert result.returncode == 2 and "--port" in result.stderr, result.stderr


def test_dormant_days_must_be_a_whole_number_above_zero(tmp_path: Path) -> None:
    url = build_ledger(tmp_path / "ledger.db")
    for days in ("ninety", "0", "-5", "1.5"):
        result = run("--db", url, "audit", "report", "dormant", "--days", days, code=2)
        assert "--days" in result.stderr
    run("--db", url, "audit", "report", "dormant", "--days", "30")


# -- item 16: the demo honours LEDGER_DATABASE_URL -----------------------------------------------


def test_demo_honours_the_database_url_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'busy.db'}"
    run("--db", url, "role", "define", "admin")
    result = CliRunner(env={"LEDGER_DATABASE_URL": url}).invoke(main, ["demo"])
    assert result.exit_code == 1, result.output
    assert "already holds events" in one_line(result)
    assert event_count(url) == 1
    assert not (tmp_path / "ledger-demo").exists()


def test_demo_writes_into_the_database_the_variable_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'named.db'}"
    result = CliRunner(env={"LEDGER_DATABASE_URL": url}).invoke(main, ["demo", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert event_count(url) > 2000
    assert not (tmp_path / "ledger-demo" / "ledger.db").exists()


# -- usability: instants, --tz ------------------------------------------------------------------


# options named like instants that take a log position instead
POSITION_OPTIONS = {("audit export", "after")}


def _options(command: click.Command, path: str = "") -> Iterator[tuple[str, click.Parameter]]:
    for param in command.params:
        yield path, param
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _options(sub, f"{path} {name}".strip())


def test_every_option_that_takes_an_instant_reads_it_one_way() -> None:
    from ledger.cli.state import Instant

    found = [
        (path, p)
        for path, p in _options(main)
        if p.name in INSTANT_OPTIONS and (path, p.name) not in POSITION_OPTIONS
    ]
    assert len(found) >= 16
    assert all(isinstance(p.type, Instant) for _, p in found), [
        (path, p.name) for path, p in found if not isinstance(p.type, Instant)
    ]
    positions = [p for path, p in _options(main) if (path, p.name) in POSITION_OPTIONS]
    assert len(positions) == len(POSITION_OPTIONS)
    assert all(isinstance(p.type, click.IntRange) for p in positions)


def test_dates_and_times_without_an_offset_are_in_tz(tmp_path: Path) -> None:
    url = build_ledger(tmp_path / "ledger.db")

    def last_login(*args: str) -> str:
        run("--db", url, "user", "record-login", "ann@acme.org", *args)
        return str(run("--db", url, "--json", "query", "user", "ann@acme.org").stdout)

    assert '"last_login_at": "2026-04-01T00:00:00Z"' in last_login("--at", "2026-04-01")
    assert '"last_login_at": "2026-04-02T10:30:00Z"' in last_login("--at", "2026-04-02T10:30")
    amsterdam = last_login("--tz", "Europe/Amsterdam", "--at", "2026-04-03T10:30")
    assert '"last_login_at": "2026-04-03T08:30:00Z"' in amsterdam
    # --tz after the option it places; an offset given wins over --tz
    after = last_login("--at", "2026-04-04", "--tz", "America/New_York")
    assert '"last_login_at": "2026-04-04T04:00:00Z"' in after
    offset = last_login("--tz", "Asia/Tokyo", "--at", "2026-04-05T00:00Z")
    assert '"last_login_at": "2026-04-05T00:00:00Z"' in offset
    # --tz before the subcommand
    run(
        "--db",
        url,
        "--tz",
        "Asia/Tokyo",
        "user",
        "record-login",
        "ann@acme.org",
        "--at",
        "2026-04-07",
    )
    shown = run("--db", url, "--json", "query", "user", "ann@acme.org").stdout
    assert '"last_login_at": "2026-04-06T15:00:00Z"' in shown
    run("--db", url, "query", "has-role", "ann@acme.org", "admin", "--at", "2026-03-01")
    run("--db", url, "audit", "replay", "--until", "2026-04-01", "--out", str(tmp_path / "r.db"))
    run("--db", url, "query", "audit-log", "--since", "2020-01-01", "--until", "2100-01-01")


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("0001-01-01T00:00:00+01:00", "before year 1"),
        ("9999-12-31T23:59:59-01:00", "after year 9999"),
        ("yesterday", "not a date or a time"),
        ("2026-02-30", "not a date or a time"),
    ],
)
def test_instants_out_of_range_or_malformed_are_one_clear_line(
    tmp_path: Path, value: str, why: str
) -> None:
    url = build_ledger(tmp_path / "ledger.db")
    events = event_count(url)
    annotate = (
        "annotation",
        "add",
        "Acme",
        "--content",
        "x",
        "--source",
        "s",
        "--end",
        "2026-01-01",
    )
    for command in [
        ("query", "roles", "ann@acme.org", "--at"),
        ("user", "record-login", "ann@acme.org", "--at"),
        ("audit", "report", "role-changes", "--since"),
        (*annotate, "--start"),
    ]:
        assert why in run("--db", url, *command, value, code=2).stderr
    assert event_count(url) == events


def test_the_extreme_instants_in_range_are_answered(tmp_path: Path) -> None:
    url = build_ledger(tmp_path / "ledger.db")
    for value in ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "0001-01-01"):
        run("--db", url, "query", "roles", "ann@acme.org", "--at", value)
        run("--db", url, "query", "annotations", "Acme", "--after", value, "--before", value)
        run("--db", url, "query", "audit-log", "--since", value, "--until", value)


def test_instants_a_command_moves_out_of_range_are_answered(tmp_path: Path) -> None:
    """A period before year 1 starts at year 1; a last-seen within the resolution of one at
    the end of time records nothing (they once overflowed)."""
    url = build_ledger(tmp_path / "ledger.db")
    end = "9999-12-31T23:59:59Z"
    run("--db", url, "user", "record-last-seen", "ann@acme.org", "--at", end)
    events = event_count(url)
    for command in [
        ("user", "record-last-seen", "ann@acme.org", "--at", end),
        ("audit", "report", "dormant", "--at", "0001-01-01"),
        ("audit", "report", "role-changes", "--until", "0001-01-01T00:00:00Z"),
    ]:
        run("--db", url, *command)
    assert event_count(url) == events


def test_an_unknown_time_zone_is_a_usage_error(tmp_path: Path) -> None:
    url = build_ledger(tmp_path / "ledger.db")
    for zone in ("Mars/Olympus", "Europe", ""):
        result = run("--db", url, "--tz", zone, "query", "users", code=2)
        assert "time zone" in result.stderr


def test_the_python_api_still_rejects_naive_datetimes(tmp_path: Path) -> None:
    led = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        account = led.create_account("Acme", actor="test")
        user = led.create_user("ann@acme.org", account_id=account, actor="test")
        with pytest.raises(ValidationError, match="naive"):
            led.record_login(user, at=datetime(2026, 3, 1))
        led.record_login(user, at=datetime(2026, 3, 1, tzinfo=UTC))
    finally:
        led.close()


# -- usability: role lists, help, piped output --------------------------------------------------


def test_role_lists_with_descriptions(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    run("--db", url, "role", "define", "admin", "Full access")
    run("--db", url, "role", "define", "consultant")
    run("--db", url, "account-role", "define", "Consultancy", "Advises client accounts")
    listed = run("--db", url, "role", "list").stdout
    assert "admin" in listed and "Full access" in listed and "consultant" in listed
    assert CliRunner().invoke(main, ["--db", url, "--json", "role", "list"]).stdout.strip() == (
        '[{"name": "admin", "description": "Full access"}, '
        '{"name": "consultant", "description": null}]'
    )
    accounts = run("--db", url, "--json", "account-role", "list").stdout
    assert '"description": "Advises client accounts"' in accounts


def test_help_explains_sources_and_beliefs() -> None:
    add = run("annotation", "add", "--help").stdout
    assert "exactly one of --source" in add and "--belief-time" in add
    query = " ".join(run("query", "annotations", "--help").stdout.split())
    assert "belief time > it" in query and "belief time <= it" in query
    assert "without a belief time pass" in query


def test_piped_output_is_never_cut(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    name = "The Very Long Name Of A Consultancy That Advises Many Client Accounts Worldwide BV"
    run("--db", url, "account", "create", name)
    run("--db", url, "user", "create", "a.very.long.address.indeed@example.org", "--account", name)
    for command in [("query", "accounts"), ("query", "users"), ("query", "audit-log")]:
        shown = run("--db", url, *command).stdout
        assert "…" not in shown, shown
    assert name in run("--db", url, "query", "accounts").stdout
    assert "a.very.long.address.indeed@example.org" in run("--db", url, "query", "users").stdout
