"""schemathesis against /openapi.json with a valid token: no 5xx, every response as declared."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.test_api import CALLER_EMAIL, build_world

FEED = "/api/v3_0/auditlog/changes"


def test_every_operation_keeps_its_schema(tmp_path: Path) -> None:
    world = build_world(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        app = world.client.app
        token = world.token(CALLER_EMAIL["admin"])
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        operations = [result.ok() for result in schema.get_all_operations()]
        # every route of SPEC §7, the ping, the change feed and the three of access reviews
        assert len(operations) == 16
        for operation in operations:
            _check(operation, token)
    finally:
        world.client.app.state.services.close()  # type: ignore[attr-defined]
        world.led.close()


def _check(operation: Any, token: str) -> None:
    # a feed cursor beyond this log's end is well-formed, and refused (422)
    excluded = [positive_data_acceptance] if operation.path == FEED else []

    @given(case=operation.as_strategy())
    @settings(
        max_examples=25,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(headers={"Authorization": token}, excluded_checks=excluded)

    check()
