"""A mirror records FlexMeasures' facts and no others: a grant that breaks a separation-of-duties
rule is recorded and reported, a living user the ledger refuses is reported and never recorded
as deleted, an actor names a FlexMeasures user by id (never by name), and a bad source URL
never shows its password."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.flexmeasures_harness.driver import FlexMeasures
from tests.flexmeasures_harness.fixtures import running_flexmeasures

REPOSITORY = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def flexmeasures(request: pytest.FixtureRequest) -> Iterator[FlexMeasures]:
    with running_flexmeasures(request) as started:
        started.do("populate")
        yield started


def test_the_harness_leaves_no_flexmeasures_files_in_the_repository(
    flexmeasures: FlexMeasures,
) -> None:
    for name in ("flexmeasures.log", "generic_asset_fm_user_ownership.sql"):
        assert not (REPOSITORY / name).exists()
