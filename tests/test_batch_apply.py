"""`ledger apply` runs a batch of lines as one transaction, loading its users and accounts
ahead of the commands in a few queries and writing its side rows in bulk. That must give what
one-by-one commands give: aggregates fresh even when this process's cache is stale, nothing
loaded that does not exist, and side rows written in the order the commands made them."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from uuid import UUID

from click.testing import CliRunner, Result

from ledger import Ledger
from ledger.cli import main
from ledger.domain import ERASED, User
from ledger.importer import Importer
from tests.conftest import ADMIN
from tests.helpers import event_names, stored_state, tmpfs


def _apply(led: Ledger, commands: list[dict[str, object]]) -> list[tuple[str, str | None]]:
    summary = Importer(led, actor=ADMIN).apply(
        [(n, json.dumps(c)) for n, c in enumerate(commands, 1)]
    )
    return [(r.status, r.error) for r in summary.results]


def test_changes_made_by_another_process_are_seen_through_a_stale_cache(
    led: Ledger, url: str, acme: UUID
) -> None:
    ann = led.create_user("ann@example.org", account_id=acme, actor=ADMIN)
    bob = led.create_user("bob@example.org", account_id=acme, actor=ADMIN)
    led.repository.get(ann)  # both now in this process's cache, without admin
    led.repository.get(bob)
    other = Ledger(url)
    try:
        other.grant_role(ann, "admin", actor=ADMIN)
        other.grant_role(bob, "admin", actor=ADMIN)
    finally:
        other.close()

    results = _apply(
        led,
        [
            {"command": "revoke_role", "user": "ann@example.org", "role": "admin"},
            {"command": "revoke_role", "user": str(bob), "role": "admin"},
        ],
    )

    assert results == [("applied", None), ("applied", None)]
    assert led.repository.get(ann).roles == set()
    assert led.repository.get(bob).roles == set()


def test_cached_and_uncached_users_end_in_the_same_state(url: str, acme: UUID) -> None:
    """The same file applied by a process that has every user cached and by one that has none
    records the same events."""
    writer = Ledger(url)
    users = [
        writer.create_user(f"u{n}@example.org", account_id=acme, actor=ADMIN) for n in range(6)
    ]
    commands: list[dict[str, object]] = []
    for n, user in enumerate(users):
        commands.append({"command": "grant_role", "user": str(user), "role": "admin"})
        if n % 2:
            commands.append({"command": "revoke_role", "user": str(user), "role": "admin"})
        commands.append({"command": "record_login", "user": f"u{n}@example.org"})
    for user in users:
        writer.repository.get(user)  # cached here, then made stale by the other process
    cold = Ledger(url)
    try:
        assert all(status == "applied" for status, _ in _apply(cold, commands))
        again = [{**c, "command": "revoke_role"} for c in commands if c["command"] == "grant_role"]
        warm_results = _apply(writer, again)
        assert warm_results == [("applied" if n % 2 == 0 else "unchanged", None) for n in range(6)]
        for user in users:
            assert cold.repository.get(user).roles == set()
            assert cold.repository.get(user).last_login_at is not None
    finally:
        cold.close()
        writer.close()


def test_an_unknown_user_id_is_rejected_and_records_nothing(led: Ledger, acme: UUID) -> None:
    ann = led.create_user("ann@example.org", account_id=acme, actor=ADMIN)
    nobody = uuid.uuid4()
    before = stored_state(led)

    results = _apply(led, [{"command": "grant_role", "user": str(nobody), "role": "admin"}])

    assert results == [("rejected", f"user {nobody} not found")]
    assert stored_state(led) == before
    assert _apply(led, [{"command": "grant_role", "user": str(ann), "role": "admin"}]) == [
        ("applied", None)
    ]


def test_an_account_id_given_as_a_user_is_rejected(led: Ledger, acme: UUID) -> None:
    before = stored_state(led)
    results = _apply(led, [{"command": "grant_role", "user": str(acme), "role": "admin"}])
    assert results == [("rejected", f"user {acme} not found")]
    assert stored_state(led) == before


def test_an_erased_user_loads_with_its_personal_data_erased(
    led: Ledger, url: str, acme: UUID
) -> None:
    ann = led.create_user("ann@example.org", account_id=acme, actor=ADMIN)
    led.erase_user(ann, actor=ADMIN, reason="GDPR request 7")
    fresh = Ledger(url)  # nothing cached, no key remembered
    try:
        results = _apply(fresh, [{"command": "deactivate_user", "user": str(ann)}])
        user = fresh.repository.get(ann)
        assert isinstance(user, User)
        assert user.email == ERASED
        assert results == [("unchanged", None)] and not user.active
    finally:
        fresh.close()


def test_an_email_freed_in_a_batch_is_taken_by_a_later_line(led: Ledger, acme: UUID) -> None:
    ann = led.create_user("ann@example.org", account_id=acme, actor=ADMIN)
    bob = led.create_user("bob@example.org", account_id=acme, actor=ADMIN)

    results = _apply(
        led,
        [
            {"command": "update_user", "user": str(ann), "email": "ann.new@example.org"},
            {"command": "update_user", "user": str(bob), "email": "ann@example.org"},
            {"command": "create_user", "email": "bob@example.org", "account": str(acme)},
            {"command": "update_user", "user": str(ann), "email": "ann.newer@example.org"},
        ],
    )

    assert results == [("applied", None)] * 4
    assert led.user_id_for_email("ann.new@example.org") is None  # claimed, then released
    assert led.user_id_for_email("ann.newer@example.org") == ann
    assert led.user_id_for_email("ann@example.org") == bob
    carol = led.user_id_for_email("bob@example.org")
    assert carol not in (None, ann, bob)


# -- bad lines, --check and --dry-run, a failing database ------------------------------------


def _shell(url: str, *args: str) -> Result:
    result = CliRunner().invoke(main, ["--db", url, "--actor", ADMIN, *args])
    assert "Traceback" not in result.stdout + result.stderr, result.exception
    return result


def _write(path: Path, *lines: bytes | dict[str, object]) -> Path:
    path.write_bytes(
        b"".join(
            (line if isinstance(line, bytes) else json.dumps(line).encode()) + b"\n"
            for line in lines
        )
    )
    return path


def test_a_bad_line_rejects_that_line_only(
    led: Ledger, url: str, acme: UUID, tmp_path: Path
) -> None:
    led.create_user("ann@example.org", account_id=acme, actor=ADMIN)
    bad_lines: dict[int, tuple[bytes | dict[str, object], str]] = {
        2: ({"command": "create_account", "name": "B", "roles": 5}, "invalid roles 5"),
        4: ({"command": "create_account", "name": "C", "roles": "Consultancy"}, "invalid roles"),
        6: (b"[" * 5000 + b"]" * 5000, "nested too deeply"),
        8: ({"command": "create_account", "name": "D\ud800"}, "invalid account name"),
        10: ({"command": "create_account", "name": "E", "command_id": "\ud800"}, "command_id"),
        12: (
            {"command": "create_user", "email": "\ud800@example.org", "account": "Acme"},
            "invalid email",
        ),
        14: (b'{"command": "create_account", "name": "F\xff"}', "not UTF-8 text: byte 0xff"),
        16: (
            {
                "command": "record_login",
                "user": "ann@example.org",
                "at": "0001-01-01T00:00:00+01:00",
            },
            "invalid at '0001-01-01T00:00:00+01:00': out of range",
        ),
        18: (
            {
                "command": "record_login",
                "user": "ann@example.org",
                "at": "9999-12-31T23:59:59-01:00",
            },
            "invalid at '9999-12-31T23:59:59-01:00': out of range",
        ),
        20: ({"command": "create_account", "name": "G\x00"}, "invalid account name 'G\\x00'"),
        22: ({"command": "define_role", "name": "r\x00"}, "invalid role name"),
        24: ({"command": "create_account", "name": "H", "command_id": "i\x00"}, "command_id"),
    }
    lines: list[bytes | dict[str, object]] = []
    for number in range(1, 26):
        if number in bad_lines:
            lines.append(bad_lines[number][0])
        else:
            lines.append({"command": "create_account", "name": f"Good {number}"})
    before = stored_state(led)

    result = _shell(url, "apply", str(_write(tmp_path / "bad.jsonl", *lines)))

    assert result.exit_code == 1
    assert f"applied 13, unchanged 0, rejected {len(bad_lines)}" in result.stdout
    reported = {
        int(line.split(":")[0].split()[1]): line
        for line in result.stdout.splitlines()
        if line.startswith("  line ")
    }
    assert set(reported) == set(bad_lines)
    for number, (_, expected) in bad_lines.items():
        assert expected in reported[number]
        assert "Value error" not in reported[number]
    accounts = {f"Good {n}" for n in range(1, 26) if n not in bad_lines}
    assert all(led.account_id_for_name(name) is not None for name in accounts)
    assert stored_state(led)[0] == before[0] + 13


def test_check_and_dry_run_validate_against_the_state_and_write_nothing(
    led: Ledger, url: str, acme: UUID, tmp_path: Path
) -> None:
    led.define_role("viewer", actor=ADMIN)
    batch = _write(
        tmp_path / "batch.jsonl",
        {"command": "create_user", "email": "ann@example.org", "account": "Acme"},
        {"command": "grant_role", "user": "ann@example.org", "role": "viewer"},
        {"command": "grant_role", "user": "ann@example.org", "role": "never-defined"},
    )
    before = stored_state(led)

    for option in ("--check", "--dry-run"):
        result = _shell(url, "apply", option, str(batch))
        assert result.exit_code == 1
        assert "3 lines, 1 invalid" in result.stdout
        assert "line 3: NotFound: role 'never-defined' is not defined" in result.stdout
        assert stored_state(led) == before

    good = _write(
        tmp_path / "good.jsonl",
        {"command": "define_role", "name": "auditor"},
        {"command": "create_user", "email": "ann@example.org", "account": "Acme"},
        {"command": "grant_role", "user": "ann@example.org", "role": "auditor"},
        {"command": "grant_role", "user": "ann@example.org", "role": "auditor"},
    )
    result = _shell(url, "apply", "--dry-run", str(good))
    assert result.exit_code == 0 and "4 lines, 0 invalid" in result.stdout
    assert stored_state(led) == before
    result = _shell(url, "apply", "--check", str(good))
    assert result.exit_code == 0 and "applied 3, unchanged 1, rejected 0" in result.stdout
    ann = led.user_id_for_email("ann@example.org")
    assert ann is not None and led.repository.get(ann).roles == {"auditor"}


def test_a_full_disk_during_apply_says_how_many_lines_were_committed(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "small-disk", size="1m") as disk:
        url = f"sqlite:///{disk / 'ledger.db'}"
        assert _shell(url, "account", "create", "Acme").exit_code == 0
        lines = [
            {
                "command": "add_annotation",
                "account": "Acme",
                "content": f"{n} " + "x" * 1000,
                "start": "2026-01-01T00:00:00+00:00",
                "end": "2026-01-02T00:00:00+00:00",
                "source": "ops",
            }
            for n in range(3000)
        ]

        result = _shell(
            url, "apply", "--batch-size", "100", str(_write(tmp_path / "a.jsonl", *lines))
        )

        assert result.exit_code == 1
        message = result.stderr.strip()
        assert len(message.splitlines()) == 1 and "disk is full" in message
        found = re.search(
            r"stopped at line (\d+) .*the (\d+) lines before it were committed", message
        )
        assert found is not None, message
        stopped_at, committed = int(found[1]), int(found[2])
        assert stopped_at == committed + 1 and 0 < committed < len(lines)
        led = Ledger(url)
        try:
            assert event_names(led).count("AnnotationAdded") == committed
        finally:
            led.close()
