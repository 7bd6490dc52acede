"""The FlexMeasures of a test module: one process and database, populated once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.flexmeasures_harness.driver import FlexMeasures


@contextmanager
def running_flexmeasures(request: pytest.FixtureRequest) -> Iterator[FlexMeasures]:
    admin_url = request.getfixturevalue("postgres_server")
    flexmeasures = FlexMeasures(admin_url)
    try:
        yield flexmeasures
    finally:
        flexmeasures.close()


def audit_rows(flexmeasures: FlexMeasures) -> list[dict[str, Any]]:
    rows = flexmeasures.query(
        "SELECT id, event_datetime, event, active_user_id, active_user_name, affected_user_id"
        " FROM audit_log ORDER BY id"
    )
    keys = ("id", "at", "event", "active_user_id", "active_user_name", "affected_user_id")
    return [dict(zip(keys, row, strict=True)) for row in rows]
