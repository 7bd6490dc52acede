"""`GET /api/` (the API versions) and `GET /api/ops/ping`, as FlexMeasures answers them."""

from fastapi import APIRouter, Request

import projections.api.schemas as schemas
from projections.api.dependencies import AppServices

API_VERSIONS = ["v3_0"]
router = APIRouter()


@router.get("/api/", response_model=schemas.Versions)
async def versions(request: Request) -> schemas.Versions:
    return schemas.Versions(
        flexmeasures_version=request.app.version,
        versions=API_VERSIONS,
        message="Account Ledger: FlexMeasures-compatible read API (v3_0)",
    )


@router.get("/api/ops/ping", response_model=schemas.Ping)
async def ping(services: AppServices) -> schemas.Ping:
    """As FlexMeasures' ping; `projection` says whether the last catch-up failed."""
    failing = services.projection_failure is not None
    return schemas.Ping(message="ok", projection="failing" if failing else "ok")
