"""Fixtures: every test that takes `url` runs once on a SQLite file and once on a throwaway
PostgreSQL database. Under CI=true a PostgreSQL that cannot be reached fails the run, and the
property tests run the "ci" hypothesis profile."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import eventsourcing.utils
import psycopg
import pytest
from hypothesis import HealthCheck, Phase, settings

from ledger import Ledger
from projections import ReadModel

# Property tests: under CI=true the "ci" profile runs each with 200 examples (the random
# histories of test_properties.py too); locally they keep their quicker defaults. Neither has
# hypothesis' deadline (200 ms an example): a timing check, which fails an example that a loaded
# machine ran slowly.
settings.register_profile("local", deadline=None)
settings.register_profile("ci", max_examples=200, deadline=None)
settings.load_profile("local")
# For runs against a planted bug (scripts/mutation.py sets LEDGER_HYPOTHESIS_PROFILE=mutant, as
# it runs pytest without plugins): report the first failing example as it is, without the
# minutes of shrinking it on two databases; and no timing checks, as a slow example on a loaded
# machine would count as the mutant caught.
settings.register_profile(
    "mutant",
    phases=[Phase.explicit, Phase.generate],
    database=None,
    print_blob=False,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
if os.environ.get("CI") == "true":
    settings.load_profile("ci")
if profile := os.environ.get("LEDGER_HYPOTHESIS_PROFILE"):
    settings.load_profile(profile)

PG_ADMIN_URL = os.environ.get("LEDGER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_available() -> str | None:
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return None
    except psycopg.Error as error:
        return str(error)


@pytest.fixture(scope="session")
def postgres_server() -> str:
    problem = _pg_available()
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required under CI and not reachable: {problem}")
        pytest.skip(f"PostgreSQL not reachable: {problem}")
    return PG_ADMIN_URL


def create_pg_database(admin_url: str) -> tuple[str, Callable[[], None]]:
    name = f"ledger_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    info = psycopg.conninfo.conninfo_to_dict(admin_url)
    url = (
        f"postgresql+psycopg://{info.get('user', 'postgres')}@"
        f"{info.get('host', '127.0.0.1')}:{info.get('port', 5432)}/{name}"
    )

    def drop() -> None:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return url, drop


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
        return
    admin_url = request.getfixturevalue("postgres_server")
    db_url, drop = create_pg_database(admin_url)
    try:
        yield db_url
    finally:
        drop()


@pytest.fixture
def led(url: str) -> Iterator[Ledger]:
    ledger = Ledger(url)
    try:
        yield ledger
    finally:
        ledger.close()


ADMIN = "cli:test-admin"


@pytest.fixture
def acme(led: Ledger) -> uuid.UUID:
    """A ledger with the well-known roles and one open account, 'Acme'."""
    for role in ("admin", "admin-reader", "account-admin", "consultant"):
        led.define_role(role, actor=ADMIN)
    led.define_account_role("Consultancy", actor=ADMIN)
    return led.create_account("Acme", actor=ADMIN)


@pytest.fixture
def rm(url: str, led: Ledger) -> Iterator[ReadModel]:
    model = ReadModel(url)
    try:
        yield model
    finally:
        model.close()


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every sleep, by the ledger's runner or by eventsourcing's retries, recorded instead of
    slept."""
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    monkeypatch.setattr(eventsourcing.utils, "sleep", slept.append)
    return slept
