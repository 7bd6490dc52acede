"""`ledger demo`, the main job, through the real console entry point."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ledger import Ledger


def run_ledger(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / "ledger"), *args]  # the real console script
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120, env=env)


def test_demo_records_into_its_own_folder_afresh(tmp_path: Path) -> None:
    first = run_ledger("demo", cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})
    assert first.returncode == 0, first.stderr
    assert "Greenhouse" in first.stdout and "Dormant users" in first.stdout
    assert "Integrity chain: intact" in first.stdout
    reports = tmp_path / "ledger-demo" / "reports"
    assert {p.name for p in reports.iterdir()} == {
        "access-review.csv",
        "role-changes.csv",
        "joiners-movers-leavers.csv",
        "dormant.csv",
        "privileged.csv",
        "failed-logins.csv",
        "sod-violations.csv",
        "denied.csv",
        "review.csv",
        "audit-report.html",
    }
    # governance: the approved exception, the grant that ended by itself, the quarterly review
    assert "SoD exception: admin-reader for " in first.stdout
    assert "Time-limited grant ended: admin-reader of " in first.stdout
    assert "Access review access-review-" in first.stdout and " 1 revoked, " in first.stdout
    review = [
        line
        for line in (reports / "review.csv").read_text().splitlines()
        if not line.startswith("# ")  # the evidence stamp
    ]
    decisions = [line.split(",")[9] for line in review[1:]]
    assert decisions.count("revoked") == 1 and "undecided" in decisions and "certified" in decisions
    assert all(line.split(",")[1] == "closed" for line in review[1:])
    page = (reports / "audit-report.html").read_text()
    assert "Access-review campaigns (" in page and "No client work since Q2" in page
    database = tmp_path / "ledger-demo" / "ledger.db"
    led = Ledger(f"sqlite:///{database}")
    try:
        count = led.recorder.max_notification_id()
    finally:
        led.close()
    assert count and count > 2000
    again = run_ledger("demo", cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})
    assert again.returncode == 0, again.stderr
    led = Ledger(f"sqlite:///{database}")
    try:
        assert led.recorder.max_notification_id() == count  # recreated, not appended to
    finally:
        led.close()


def test_demo_refuses_a_database_that_holds_events(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'busy.db'}"
    led = Ledger(url)
    try:
        led.define_role("admin", actor="test")
    finally:
        led.close()
    result = run_ledger("--db", url, "demo", cwd=tmp_path)
    assert result.returncode == 1
    assert "already holds events" in result.stderr
    assert "Traceback" not in result.stderr
    led = Ledger(url)
    try:
        assert led.recorder.max_notification_id() == 1
    finally:
        led.close()


def test_demo_writes_into_an_empty_database_given_by_url(url: str, tmp_path: Path) -> None:
    result = run_ledger("--db", url, "demo", "--seed", "3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "ledger-demo" / "ledger.db").exists()  # only the reports go there
    assert (tmp_path / "ledger-demo" / "reports" / "audit-report.html").exists()
