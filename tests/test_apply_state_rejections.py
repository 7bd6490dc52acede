"""`ledger apply` lines that parse and name existing users and accounts, but that the state
rejects (an inactive or erased user, a closed account, a taken email, username or name): each
is rejected alone and records nothing, the other lines apply, in one batch, in batches of one
line, and when a concurrent writer makes the batch re-run its lines one by one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from click.testing import CliRunner

from ledger import Ledger
from ledger.batch import Batch
from ledger.cli import main
from ledger.domain import User
from tests.conftest import ADMIN
from tests.helpers import event_names, stored_state

PASSWORD = "a long enough password"


@dataclass(frozen=True)
class Cast:
    ann: UUID  # active, in Acme
    bob: UUID  # active, in Acme; deactivated and erased by the file
    ivy: UUID  # inactive
    eve: UUID  # erased
    gus: UUID  # inactive, in the closed account Gone
    beta: UUID  # an open account
    gone: UUID  # a closed account


@pytest.fixture
def cast(led: Ledger, acme: UUID) -> Cast:
    ann = led.create_user("ann@example.org", account_id=acme, actor=ADMIN)
    bob = led.create_user("bob@example.org", account_id=acme, actor=ADMIN)
    ivy = led.create_user("ivy@example.org", account_id=acme, actor=ADMIN)
    led.deactivate_user(ivy, actor=ADMIN)
    eve = led.create_user("eve@example.org", account_id=acme, actor=ADMIN)
    led.erase_user(eve, actor=ADMIN, reason="GDPR request")
    beta = led.create_account("Beta", actor=ADMIN)
    gone = led.create_account("Gone", actor=ADMIN)
    gus = led.create_user("gus@example.org", account_id=gone, actor=ADMIN)
    led.close_account(gone, actor=ADMIN)
    return Cast(ann, bob, ivy, eve, gus, beta, gone)


def lines_and_outcomes(c: Cast) -> list[tuple[dict[str, Any], str, list[str]]]:
    """(line, expected status or error type, the events it records)."""
    at = datetime(2026, 5, 1, tzinfo=UTC).isoformat()
    annotation = {"content": "x", "start": at, "end": "2026-05-02T00:00:00+00:00", "source": "s"}
    return [
        ({"command": "record_login", "user": "ivy@example.org"}, "InactiveUser", []),
        ({"command": "grant_role", "user": "ann@example.org", "role": "admin"}, "applied", [
            "RoleGranted"
        ]),
        ({"command": "record_last_seen", "user": str(c.ivy), "at": at}, "InactiveUser", []),
        ({"command": "grant_role", "user": str(c.eve), "role": "admin"}, "Conflict", []),
        ({"command": "record_login", "user": str(c.eve)}, "Conflict", []),
        ({"command": "set_password", "user": str(c.eve), "password": PASSWORD}, "Conflict", []),
        ({"command": "reactivate_user", "user": str(c.eve)}, "Conflict", []),
        ({"command": "update_user", "user": str(c.eve), "timezone": "UTC"}, "Conflict", []),
        ({"command": "create_user", "email": "new@example.org", "account": str(c.gone)},
         "Conflict", []),
        ({"command": "create_user", "email": "ANN@example.org", "account": "Acme"},
         "Conflict", []),
        ({"command": "create_user", "email": "x@example.org", "username": "ann",
          "account": "Acme"}, "Conflict", []),
        ({"command": "create_account", "name": "Acme"}, "Conflict", []),
        ({"command": "update_account", "account": "Beta", "name": "Acme"}, "Conflict", []),
        ({"command": "update_account", "account": str(c.gone), "name": "Gone again"},
         "Conflict", []),
        ({"command": "grant_account_role", "account": str(c.gone), "role": "Consultancy"},
         "Conflict", []),
        ({"command": "set_consultancy", "account": "Beta", "consultancy_account_id": str(c.gone)},
         "Conflict", []),
        ({"command": "reactivate_user", "user": "gus@example.org"}, "Conflict", []),
        ({"command": "update_user", "user": str(c.ann), "email": "IVY@example.org"},
         "Conflict", []),
        ({"command": "add_annotation", "account": str(c.gone), **annotation}, "Conflict", []),
        ({"command": "revoke_role", "user": "ann@example.org", "role": "consultant"},
         "unchanged", []),
        ({"command": "deactivate_user", "user": "ivy@example.org"}, "unchanged", []),
        # state the earlier lines of the same file made
        ({"command": "deactivate_user", "user": "bob@example.org"}, "applied", [
            "UserDeactivated"
        ]),
        ({"command": "record_login", "user": str(c.bob)}, "InactiveUser", []),
        ({"command": "create_user", "email": "new@example.org", "account": "Acme"}, "applied", [
            "UserCreated", "UserJoined"
        ]),
        ({"command": "create_user", "email": "NEW@example.org", "account": "Beta"},
         "Conflict", []),
        ({"command": "erase_user", "user": str(c.bob), "reason": "left"}, "applied", [
            "UserErased"
        ]),
        ({"command": "grant_role", "user": str(c.bob), "role": "admin"}, "Conflict", []),
        ({"command": "record_login", "user": "ann@example.org"}, "applied", ["LoginRecorded"]),
    ]  # fmt: skip


def user_of(led: Ledger, user_id: UUID) -> User:
    user: object = led.repository.get(user_id)
    assert isinstance(user, User)
    return user


def run_apply(url: str, path: Path, *options: str) -> dict[str, Any]:
    result = CliRunner().invoke(
        main, ["--db", url, "--actor", ADMIN, "--json", "apply", *options, str(path)]
    )
    assert "Traceback" not in result.stdout + result.stderr, result.exception
    assert result.exit_code == 1, (result.stdout, result.stderr)  # some lines are rejected
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


@pytest.fixture
def one_by_one(led: Ledger, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Make every batch meet a concurrent writer at its commit (another Ledger records a login
    of a user the batch changes), so `apply` re-runs its lines one by one. Yields the number
    of batches that met one, and the event the writer recorded is counted by the test."""
    other = Ledger(led.url)
    met: list[int] = []
    real_commit = Batch.commit

    def commit_after_a_concurrent_write(batch: Batch) -> None:
        ann = other.resolve_user("ann@example.org")
        other.record_login(ann)
        met.append(1)
        real_commit(batch)

    monkeypatch.setattr(Batch, "commit", commit_after_a_concurrent_write)
    try:
        yield met
    finally:
        other.close()


@pytest.mark.parametrize("how", ["one-batch", "a-batch-per-line", "one-by-one"])
def test_lines_the_state_rejects_record_nothing_and_the_others_apply(
    led: Ledger, cast: Cast, tmp_path: Path, how: str, request: pytest.FixtureRequest
) -> None:
    table = lines_and_outcomes(cast)
    path = tmp_path / "state.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line, _, _ in table))
    before_names = event_names(led)
    before = stored_state(led)
    concurrent = request.getfixturevalue("one_by_one") if how == "one-by-one" else []

    summary = run_apply(
        led.url, path, *(["--batch-size", "1"] if how == "a-batch-per-line" else [])
    )

    got = [
        line["status"] if line["status"] != "rejected" else line["error_type"]
        for line in summary["lines"]
    ]
    assert got == [outcome for _, outcome, _ in table]
    assert (summary["applied"], summary["unchanged"]) == (5, 2)
    assert all(str(r["error"]).strip() and "\n" not in r["error"] for r in summary["rejected"])
    expected = [name for _, _, names in table for name in names]
    if how == "one-by-one":
        assert concurrent == [1]  # the one batch met a writer, and its lines ran one by one
        expected = ["LoginRecorded", *expected]  # the concurrent writer's
    names = event_names(led)
    assert len(names) == len(before_names) + len(expected)
    # a batch saves its events aggregate by aggregate (the new ones first), not line by line
    assert sorted(names[len(before_names) :]) == sorted(expected)
    # side rows: the new user's two claims and key in, erased bob's out; no one else's
    assert stored_state(led)[1:] == before[1:]
    fresh = Ledger(led.url)
    try:
        ann = user_of(fresh, cast.ann)
        assert (ann.roles, ann.email) == ({"admin"}, "ann@example.org")
        assert ann.login_count == 1 + (how == "one-by-one")
        assert not fresh.repository.get(cast.ivy).active
        assert fresh.repository.get(cast.gus).active is False
        assert fresh.repository.get(cast.bob).erased
        assert fresh.account_id_for_name("Acme") is not None
        assert fresh.account_id_for_name("Gone") is None
        new = fresh.user_id_for_email("new@example.org")
        assert new is not None and fresh.repository.get(new).account_id != cast.beta
    finally:
        fresh.close()


def test_re_running_the_file_records_nothing_more(led: Ledger, cast: Cast, tmp_path: Path) -> None:
    """With command ids: the applied lines return their first result, the rejected ones are
    rejected again (a rejected line does not consume its id)."""
    table = lines_and_outcomes(cast)
    path = tmp_path / "state.jsonl"
    path.write_text(
        "".join(
            json.dumps({**line, "command_id": f"state-{number}"}) + "\n"
            for number, (line, _, _) in enumerate(table, 1)
        )
    )
    first = run_apply(led.url, path)
    assert first["applied"] == 5
    after_first = stored_state(led)

    again = run_apply(led.url, path)

    assert again["applied"] == 0, [r for r in again["lines"] if r["status"] == "applied"]
    rejected_first = {n for n, (_, outcome, _) in enumerate(table, 1) if outcome[0].isupper()}
    assert rejected_first <= {r["line"] for r in again["rejected"]}
    assert stored_state(led) == after_first
