"""`POST /api/requestAuthToken`: a token for an email and password, as FlexMeasures issues it;
the login (or the failed login of a known user) is recorded, and failures are throttled."""

import ipaddress
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from starlette.background import BackgroundTask

import projections.api.schemas as schemas
from ledger.errors import LedgerError
from projections.api.auth import UNKNOWN_EMAIL, WRONG_CREDENTIALS, LoginRefused
from projections.api.dependencies import AppServices, Throttle
from projections.api.errors import PROBLEMS, ApiError, problem
from projections.api.services import log

router = APIRouter()


@router.post(
    "/api/requestAuthToken",
    response_model=schemas.Token,
    responses={401: PROBLEMS[401], 422: PROBLEMS[422], 429: PROBLEMS[429]},
)
def request_auth_token(
    body: schemas.TokenRequest, request: Request, services: AppServices, throttle: Throttle
) -> Any:
    client = request.client.host if request.client else None
    wait = throttle.retry_after(body.email, client)
    if wait is not None:
        raise ApiError(
            429,
            f"too many failed logins for this email or from this address: "
            f"try again in {wait} seconds",
            {"Retry-After": str(wait)},
        )
    found = services.reads().find_user_by_email(body.email)
    ledger = services.ledger
    address = _ip_address(client)
    try:
        token = services.tokens.log_in(found.id if found else None, body.password)
    except LoginRefused as refused:
        throttle.failed(body.email, client)
        if found is None or refused.reason == UNKNOWN_EMAIL:
            # not an event: anyone could flood the log with made-up emails
            log.warning("failed login for an unknown email from %s", client or "nowhere")
            return problem(401, WRONG_CREDENTIALS)

        def record(user_id: UUID = found.id, reason: str = refused.reason) -> None:
            try:
                ledger.record_failed_login(user_id, ip=address, reason_kind=reason)
            except LedgerError as error:
                log.error("failed login of user %s not recorded: %s", user_id, error)

        # recorded once the answer is sent, so that writing the event does not make a
        # known email's answer slower than an unknown one's
        return problem(401, WRONG_CREDENTIALS, background=BackgroundTask(record))
    assert found is not None  # a token is only ever issued for a known user
    throttle.succeeded(body.email)
    ledger.record_login(found.id, ip=address)
    return schemas.Token(auth_token=token)


def _ip_address(host: str | None) -> str | None:
    """The client's address if it is an IP address (a test client's is a name)."""
    try:
        return str(ipaddress.ip_address(host or ""))
    except ValueError:
        return None
