"""Test helpers: looks at the database directly, below the public API; the CLI and the read
API driven as their users drive them."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient

from ledger import Ledger
from ledger.cli import main
from projections.api import create_app

SIDE_TABLES = ("ledger_claims", "ledger_commands", "ledger_user_keys", "ledger_credentials")


def stored_state(led: Ledger) -> tuple[Any, ...]:
    """Everything a rejected command must leave unchanged: the events and the side tables."""
    counts = []
    for table in SIDE_TABLES:
        row = led.side.select_one(f"SELECT COUNT(*) AS n FROM {table}", ())
        assert row is not None
        counts.append(row["n"])
    return (led.recorder.max_notification_id(), *counts)


def event_names(led: Ledger) -> list[str]:
    return [
        n.topic.rsplit(".", 1)[-1]
        for n in led.recorder.select_notifications(start=1, limit=1_000_000)
    ]


def cli(
    *args: str, code: int = 0, env: dict[str, str] | None = None, stdin: str | None = None
) -> Result:
    """Run `ledger ARGS...`; it must exit with `code` and never print a traceback."""
    result = CliRunner(env=env).invoke(main, list(args), input=stdin)
    assert result.exit_code == code, (args, result.stdout, result.stderr, result.exception)
    assert "Traceback" not in result.stdout + result.stderr
    return result


def one_line(result: Result) -> str:
    """The one line a refused command prints on stderr."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@contextmanager
def api_client(url: str, address: str) -> Iterator[TestClient]:
    """The read API on `url`, as a client at `address` sees it (a 500 is an answer, not raised),
    its services closed afterwards."""
    app = create_app(url)
    with TestClient(app, client=(address, 50000), raise_server_exceptions=False) as client:
        yield client
    app.state.services.close()


def cannot_run(reason: str) -> None:
    """Skip a test this machine cannot run; under CI=true, fail it: CI must run them all."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run this test, but {reason}")
    pytest.skip(reason)


@contextmanager
def tmpfs(folder: Path, *, size: str = "2m", read_only: bool = False) -> Iterator[Path]:
    """A small file system of our own mounted at `folder` (root only): a disk that fills up,
    or one that cannot be written at all."""
    folder.mkdir(exist_ok=True)
    if os.geteuid() != 0:
        cannot_run("mounting a tmpfs needs root")
    options = f"size={size}" + (",ro" if read_only else "")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        cannot_run(f"mount is not permitted here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def remount_read_only(folder: Path) -> None:
    remounted = subprocess.run(
        ["mount", "-o", "remount,ro", str(folder)], capture_output=True, text=True
    )
    if remounted.returncode != 0:
        cannot_run(f"remounting read-only is not permitted: {remounted.stderr.strip()}")


class Clock:
    """An event clock that tests move by hand (`Ledger(url, clock=...)`)."""

    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def __call__(self) -> datetime:
        return self.moment
