"""The `ledger` command line, through its entry point: every subcommand, output, exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from ledger.cli import main


class Shell:
    def __init__(self, url: str) -> None:
        self.url = url
        self.runner = CliRunner()

    def __call__(self, *args: str, input: str | None = None, code: int = 0) -> Result:
        result = self.runner.invoke(
            main, ["--db", self.url, "--actor", "cli:tester", *args], input=input
        )
        assert result.exit_code == code, (args, result.stdout, result.stderr, result.exception)
        assert "Traceback" not in result.stdout + result.stderr
        return result

    def json(self, *args: str, input: str | None = None, code: int = 0) -> Any:
        return json.loads(self("--json", *args, input=input, code=code).stdout)


@pytest.fixture
def sh(url: str) -> Shell:
    shell = Shell(url)
    for role in ("admin", "account-admin", "consultant"):
        shell("role", "define", role, f"the {role} role")
    shell("account-role", "define", "Consultancy")
    return shell


def test_accounts_from_the_shell(sh: Shell) -> None:
    seita = sh.json(
        "account",
        "create",
        "Seita",
        "--role",
        "Consultancy",
        "--primary-color",
        "#112233",
        "--secondary-color",
        "#445566",
        "--logo-url",
        "https://seita.example/logo.png",
    )["result"]
    client = sh("account", "create", "Client BV", "--consultancy", "Seita").stdout.strip()
    assert sh.json("query", "account", "Client BV")["consultancy_account_id"] == seita
    assert "recorded" in sh("account", "update", "Client BV", "--name", "Client B.V.").stdout
    assert "unchanged" in sh("account", "update", client, "--name", "Client B.V.").stdout
    sh("account", "update", "Seita", "--primary-color", "", "--secondary-color", "")
    assert sh.json("query", "account", seita)["primary_color"] is None
    assert sh.json("account", "revoke-role", "Seita", "Consultancy") == {
        "result": True,
        "recorded": True,
    }
    sh("account", "grant-role", "Seita", "Consultancy")
    sh("account", "set-consultancy", "Client B.V.", "none")
    assert sh.json("query", "account", client)["consultancy_account_id"] is None
    sh("account", "set-consultancy", "Client B.V.", seita)
    sh("account", "close", "Client B.V.", "--reason", "contract ended")
    names = [a["name"] for a in sh.json("query", "accounts")]
    assert names == ["Seita"]
    closed = sh.json("query", "accounts", "--include-closed")
    assert {a["name"]: a["closed"] for a in closed} == {"Client B.V.": True, "Seita": False}


def test_users_from_the_shell(sh: Shell) -> None:
    sh("account", "create", "Acme")
    ann = sh.json(
        "user",
        "create",
        "Ann@Acme.org",
        "--account",
        "Acme",
        "--role",
        "admin",
        "--timezone",
        "UTC",
        "--command-id",
        "c-1",
    )["result"]
    assert sh.json(
        "user",
        "create",
        "Ann@Acme.org",
        "--account",
        "Acme",
        "--role",
        "admin",
        "--timezone",
        "UTC",
        "--command-id",
        "c-1",
    ) == {"result": ann, "recorded": False}
    sh(
        "user",
        "create",
        "bob@acme.org",
        "--account-id",
        "Acme",
        "--password-stdin",
        input="s3cret\n",
    )
    sh("user", "update", "ann@acme.org", "--username", "annie", "--timezone", "Asia/Tokyo")
    sh("user", "grant-role", ann, "consultant", "--reason", "JIRA-1")
    sh("user", "revoke-role", "ann@acme.org", "consultant")
    sh(
        "user",
        "record-login",
        "ann@acme.org",
        "--at",
        "2026-05-01T10:00:00+02:00",
        "--ip",
        "192.0.2.4",
    )
    assert (
        sh.json("user", "record-last-seen", "ann@acme.org", "--at", "2026-05-01T10:00:00+02:00")[
            "result"
        ]
        is True
    )
    assert (
        sh.json("user", "record-last-seen", "ann@acme.org", "--at", "2026-05-01T10:01:00+02:00")[
            "result"
        ]
        is False
    )
    sh("user", "set-password", "ann@acme.org", input="pw-1\npw-1\n")
    sh("user", "set-password", "ann@acme.org", "--password-stdin", input="pw-2\n")
    user = sh.json("query", "user", "ANN@acme.org")
    assert (user["username"], user["timezone"], user["roles"]) == ("annie", "Asia/Tokyo", ["admin"])
    assert user["last_login_at"] == "2026-05-01T08:00:00Z"
    assert sh("query", "has-role", "ann@acme.org", "admin").stdout.strip() == "yes"
    sh("user", "deactivate", "ann@acme.org", "--reason", "left")
    assert sh.json("query", "has-role", ann, "admin") == {"has_role": False}
    assert sh.json("query", "roles", ann) == {"roles": []}
    assert sh.json("query", "roles", ann, "--held") == {"roles": ["admin"]}
    assert sh.json("query", "holders", "admin") == []
    sh("user", "reactivate", "ann@acme.org")
    assert [u["email"] for u in sh.json("query", "holders", "admin")] == ["Ann@acme.org"]
    assert sh.json("query", "users", "--account", "Acme")[0]["email"] == "Ann@acme.org"
    sh("user", "erase", "bob@acme.org", code=2)  # needs --reason
    sh("user", "erase", "bob@acme.org", "--reason", "GDPR 42")
    emails = {u["email"] for u in sh.json("query", "users", "--include-inactive")}
    assert emails == {"Ann@acme.org", "[erased]"}
    log = sh.json("query", "audit-log", ann)
    assert [row["event"] for row in log][:2] == ["UserCreated", "RoleGranted"]
    grant = next(row for row in log if row.get("reason") == "JIRA-1")
    assert grant["actor"] == "cli:tester" and grant["role"] == "consultant"


def test_annotations_from_the_shell(sh: Shell) -> None:
    sh("account", "create", "Acme")
    sh("user", "create", "ann@acme.org", "--account", "Acme")
    first = sh.json(
        "annotation",
        "add",
        "Acme",
        "--content",
        "Holiday",
        "--type",
        "holiday",
        "--start",
        "2026-12-24T00:00:00Z",
        "--end",
        "2026-12-27T00:00:00Z",
        "--source",
        "calendar",
    )["result"]
    sh(
        "annotation",
        "add",
        "Acme",
        "--content",
        "Outage",
        "--type",
        "alert",
        "--start",
        "2026-12-01T00:00:00Z",
        "--end",
        "2026-12-01T02:00:00Z",
        "--source-user",
        "ann@acme.org",
    )
    found = sh.json("query", "annotations", "Acme", "--after", "2026-12-10T00:00:00Z")
    assert [a["content"] for a in found] == ["Holiday"]
    assert len(sh.json("query", "annotations", "Acme", "--source", "calendar")) == 1
    sh("annotation", "remove", "Acme", first)
    assert [a["content"] for a in sh.json("query", "annotations", "Acme")] == ["Outage"]
    sh(
        "annotation",
        "add",
        "Acme",
        "--content",
        "x",
        "--start",
        "2026-12-01T00:00:00Z",
        "--end",
        "2026-12-02T00:00:00Z",
        code=2,
    )  # no source


def test_query_at_a_past_instant(url: str, sh: Shell) -> None:
    sh("account", "create", "Acme")
    sh("user", "create", "ann@acme.org", "--account", "Acme", "--role", "admin")
    created = sh.json("query", "user", "ann@acme.org")["created_at"]
    assert sh.json("query", "has-role", "ann@acme.org", "admin", "--at", created) == {
        "has_role": True
    }
    assert sh.json(
        "query", "has-role", "ann@acme.org", "admin", "--at", "2000-01-01T00:00:00Z"
    ) == {"has_role": False}


def test_errors_are_one_line_and_exit_1(sh: Shell) -> None:
    sh("account", "create", "Acme")
    result = sh("user", "create", "not-an-email", "--account", "Acme", code=1)
    assert result.stderr.strip().startswith("error: invalid email 'not-an-email'")
    assert len(result.stderr.strip().splitlines()) == 1
    result = sh("user", "grant-role", "nobody@acme.org", "admin", code=1)
    assert "user 'nobody@acme.org' not found" in result.stderr
    result = sh("account", "create", "Acme", code=1)
    assert "'Acme' is already taken" in result.stderr
    assert sh.json("account", "create", "Acme", code=1) == {
        "error": {"type": "Conflict", "message": result.stderr.strip().removeprefix("error: ")}
    }
    sh("user", "grant-role", "only-one-argument", code=2)
    sh("no-such-command", code=2)
    sh("user", "record-login", "nobody@acme.org", "--at", "2026-01-01T00:00:00", code=1)


def test_a_database_that_cannot_be_reached_is_one_line() -> None:
    runner = CliRunner()
    result = runner.invoke(
        main, ["--db", "postgresql+psycopg://nobody@127.0.0.1:1/none", "role", "define", "x"]
    )
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error:") and "Traceback" not in result.output
    result = runner.invoke(main, ["--db", "mysql://x/y", "role", "define", "x"])
    assert result.exit_code == 1 and "only sqlite" in result.stderr


def test_global_options_before_the_subcommand_and_from_the_environment(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEDGER_DATABASE_URL", url)
    monkeypatch.setenv("LEDGER_ACTOR", "cli:from-env")
    runner = CliRunner()
    result = runner.invoke(main, ["--reason", "setup", "--json", "role", "define", "admin"])
    assert result.exit_code == 0, result.output
    log = json.loads(runner.invoke(main, ["--json", "query", "audit-log"]).stdout)
    assert (log[0]["actor"], log[0]["reason"]) == ("cli:from-env", "setup")


def test_project_and_rebuild(sh: Shell) -> None:
    sh("account", "create", "Acme")
    assert sh.json("project") == {"projected": 5}
    assert sh.json("project") == {"projected": 0}
    assert sh.json("rebuild") == {"projected": 5}


BATCH = [
    {"command": "create_account", "name": "Client BV", "command_id": "imp-0"},
    {
        "command": "create_user",
        "email": "ann@x.org",
        "account": "Client BV",
        "roles": ["consultant"],
        "command_id": "imp-1",
    },
    {
        "command": "grant_role",
        "user": "ann@x.org",
        "role": "account-admin",
        "reason": "JIRA-12",
        "command_id": "imp-2",
    },
    {"command": "grant_role", "user": "ann@x.org", "role": "account-admin"},
    {"command": "grant_role", "user": "nobody@x.org", "role": "admin"},
    {"command": "create_user", "email": "bob@x.org", "account": "Client BV", "timezone": "Mars"},
    {"command": "deactivate_user", "user": "ann@x.org", "reason": "left", "command_id": "imp-3"},
    {"command": "no_such_command"},
]


def write_batch(path: Path, commands: list[dict[str, Any]], extra: str = "") -> Path:
    path.write_text(
        "# an example file\n\n" + "\n".join(json.dumps(c) for c in commands) + "\n" + extra
    )
    return path


def test_apply_reports_applied_unchanged_and_rejected_lines(sh: Shell, tmp_path: Path) -> None:
    batch = write_batch(tmp_path / "batch.jsonl", BATCH, "{not json\n")
    first = sh("apply", str(batch), code=1)
    assert "applied 4, unchanged 1, rejected 4" in first.stdout
    for line, reason in (
        (7, "user 'nobody@x.org' not found"),
        (8, "'Mars'"),
        (10, "unknown command 'no_such_command'"),
        (11, "not a JSON object"),
    ):
        assert f"line {line}:" in first.stdout and reason in first.stdout
    second = sh.json("apply", str(batch), code=1)
    assert (second["applied"], second["unchanged"]) == (0, 5)
    assert [r["line"] for r in second["rejected"]] == [7, 8, 10, 11]
    user = sh.json("query", "user", "ann@x.org")
    assert user["roles"] == ["account-admin", "consultant"] and not user["active"]
    log = sh.json("query", "audit-log", "ann@x.org")
    grant = next(row for row in log if row.get("role") == "account-admin")
    assert (grant["reason"], grant["command_id"], grant["actor"]) == (
        "JIRA-12",
        "imp-2",
        "cli:tester",
    )


def test_apply_check_and_dry_run_write_nothing_on_error(sh: Shell, tmp_path: Path) -> None:
    batch = write_batch(tmp_path / "batch.jsonl", BATCH)
    before = sh.json("project")
    result = sh("apply", "--check", str(batch), code=1)
    assert "rejected before writing anything" in result.stdout
    assert "line 8:" in result.stdout and "line 6:" not in result.stdout  # earlier lines resolve
    assert sh.json("project") == {"projected": 0} and before["projected"] > 0
    good = write_batch(tmp_path / "good.jsonl", BATCH[:4])
    assert "0 invalid" in sh("apply", "--dry-run", str(good)).stdout
    assert sh.json("project") == {"projected": 0}
    assert "applied 3, unchanged 1" in sh("apply", "--check", str(good)).stdout


def test_apply_stop_on_error_and_stdin(sh: Shell, tmp_path: Path) -> None:
    batch = "\n".join(json.dumps(c) for c in BATCH)
    result = sh("apply", "--stop-on-error", "-", input=batch, code=1)
    assert "applied 3, unchanged 1, rejected 1" in result.stdout
    assert sh.json("query", "user", "ann@x.org")["active"] is True  # line 7 never ran


def test_apply_the_example_file_twice(url: str) -> None:
    sh = Shell(url)
    example = Path(__file__).parent.parent / "scripts" / "examples" / "onboarding.jsonl"
    first = sh.json("apply", str(example))
    assert first["rejected"] == [] and first["applied"] > 5
    second = sh.json("apply", str(example))
    assert second["applied"] == 0 and second["unchanged"] == first["applied"] + first["unchanged"]


def test_apply_small_batches_see_earlier_batches(sh: Shell, tmp_path: Path) -> None:
    batch = write_batch(tmp_path / "batch.jsonl", BATCH[:3])
    result = sh.json("apply", "--batch-size", "1", str(batch))
    assert result["applied"] == 3
