"""FlexMeasures' own virtual environment and a template database built by its migrations, each
made once per machine (under a file lock, so two pytest-xdist workers never build both)."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import psycopg

VERSION: Final = "1.0.1"
VENV_VARIABLE: Final = "LEDGER_FLEXMEASURES_VENV"
TEMPLATE_DATABASE: Final = f"flexmeasures_template_{VERSION.replace('.', '_')}"
SIDE_SCRIPT: Final = Path(__file__).with_name("flexmeasures_side.py")
# The default "1 week" crashes Flask-Security-Too 5.9 at start-up.
CONFIG: Final = """\
SQLALCHEMY_DATABASE_URI = {url!r}
SECRET_KEY = "connector-tests-secret-key-not-for-production"
SECURITY_TOTP_SECRETS = {{"1": "connector-tests-totp-secret"}}
SECURITY_TWO_FACTOR_LOGIN_VALIDITY = "1 weeks"
MAIL_SUPPRESS_SEND = True
FLEXMEASURES_PROFILE_REQUESTS = False
"""


def venv_path() -> Path:
    given = os.environ.get(VENV_VARIABLE)
    if given:
        return Path(given)
    return Path.home() / ".cache" / "account-ledger" / f"flexmeasures-{VERSION}"


def python() -> Path:
    """FlexMeasures' interpreter; its virtual environment is built first if missing (minutes)."""
    venv = venv_path()
    ready = venv / ".ready"
    if ready.exists():
        return venv / "bin" / "python"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with _locked(venv.parent / f".{venv.name}.lock"):
        if not ready.exists():
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run(
                [str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
                 f"flexmeasures=={VERSION}"],
                check=True,
            )  # fmt: skip
            ready.write_text(VERSION)
    return venv / "bin" / "python"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_config(home: Path, url: str) -> None:
    (home / ".flexmeasures.cfg").write_text(CONFIG.format(url=url))


def side_environment(home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "HOME": str(home),
        "FLEXMEASURES_ENV": "development",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def _database_exists(admin_url: str, name: str) -> bool:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return found is not None


def template_database(admin_url: str, server_url: str) -> str:
    """A database migrated by FlexMeasures' own `flexmeasures db upgrade`, kept as a template
    (`server_url`: the server's URL without a database name, for FlexMeasures to connect)."""
    fm_python = python()
    lock = venv_path().parent / f".{TEMPLATE_DATABASE}.lock"
    with _locked(lock):
        if _database_exists(admin_url, TEMPLATE_DATABASE):
            return TEMPLATE_DATABASE
        building = f"{TEMPLATE_DATABASE}_building"
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{building}"')
        with tempfile.TemporaryDirectory() as home:
            write_config(Path(home), f"{server_url}/{building}")
            flexmeasures = fm_python.with_name("flexmeasures")
            subprocess.run(
                [str(fm_python), str(flexmeasures), "db", "upgrade"],
                env=side_environment(Path(home)),
                cwd=home,  # its migrations and log write files into the working folder
                check=True,
                capture_output=True,
            )
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{building}" RENAME TO "{TEMPLATE_DATABASE}"')
    return TEMPLATE_DATABASE
