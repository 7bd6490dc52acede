"""schemathesis against /openapi.json with a valid token: no 5xx, every response as declared."""

from __future__ import annotations

from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.test_api import CALLER_EMAIL, build_world


def test_every_operation_keeps_its_schema(tmp_path: Path) -> None:
    world = build_world(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        app = world.client.app
        token = world.token(CALLER_EMAIL["admin"])
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) == 12  # every route of SPEC §7, and the ping
        for operation in operations:

            @given(case=operation.as_strategy())
            @settings(
                max_examples=25,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def check(case: schemathesis.Case) -> None:
                case.call_and_validate(headers={"Authorization": token})

            check()
    finally:
        world.client.app.state.services.close()  # type: ignore[attr-defined]
        world.led.close()
