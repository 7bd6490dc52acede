"""A mirror records FlexMeasures' facts and no others: a grant that breaks a separation-of-duties
rule is recorded and reported, a living user the ledger refuses is reported and never recorded
as deleted, an actor names a FlexMeasures user by id (never by name), and a bad source URL
never shows its password."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ledger import Ledger
from ledger.flexmeasures.mirror import actor_of
from ledger.flexmeasures.source import AuditRow
from tests.flexmeasures_harness.driver import FlexMeasures
from tests.flexmeasures_harness.fixtures import running_flexmeasures

REPOSITORY = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def flexmeasures(request: pytest.FixtureRequest) -> Iterator[FlexMeasures]:
    with running_flexmeasures(request) as started:
        started.do("populate")
        yield started


def _row(user_id: int | None, name: str | None) -> AuditRow:
    return AuditRow(1, datetime(2026, 1, 1, tzinfo=UTC), "User x created", user_id, name, 2, 3)


@pytest.mark.parametrize(
    ("user_id", "name", "actor"),
    [
        (42, "Ann Example", "flexmeasures:42"),
        (42, None, "flexmeasures:42"),
        (None, "flexmeasures CLI", "flexmeasures:flexmeasures CLI"),
        (None, "bad\x00name", "flexmeasures:bad?name"),
        (None, None, "flexmeasures:system"),
        (None, "  ", "flexmeasures:system"),
    ],
)
def test_an_actor_names_a_flexmeasures_user_by_id_never_by_name(
    user_id: int | None, name: str | None, actor: str
) -> None:
    assert actor_of(_row(user_id, name)) == actor


@pytest.mark.parametrize("url", ["sqlite"], indirect=True)
def test_a_source_url_sqlalchemy_cannot_read_is_refused_without_its_password(url: str) -> None:
    result = subprocess.run(
        [str(Path(sys.executable).with_name("ledger")), "--db", url, "flexmeasures", "import",
         "--from", "postgresql://fm:s3cret-pw@db.example:abc/fm"],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "invalid FlexMeasures database URL 'postgresql://fm:***@db.example:abc/fm'" in lines[0]
    assert "s3cret" not in result.stderr + result.stdout
    with Ledger(url) as led:
        assert led.recorder.max_notification_id() in (None, 0)


def test_the_harness_leaves_no_flexmeasures_files_in_the_repository(
    flexmeasures: FlexMeasures,
) -> None:
    for name in ("flexmeasures.log", "generic_asset_fm_user_ownership.sql"):
        assert not (REPOSITORY / name).exists()
