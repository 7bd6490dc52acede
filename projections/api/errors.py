"""The read API's errors: every answer that is not data is `{"message", "status"}`, one line
naming the bad input."""

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.background import BackgroundTask

import projections.api.schemas as schemas
from ledger.validation import in_our_words, shown

PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {"model": schemas.Problem, "description": text}
    for status, text in (
        (401, "No, a bad or an expired token"),
        (403, "Not readable by the caller"),
        (404, "No such resource"),
        (422, "Invalid parameters"),
        (429, "Too many failed logins: wait for the seconds in Retry-After"),
    )
}


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


_STATUS_NAMES = {
    401: "UNAUTHORIZED",
    403: "INVALID_SENDER",
    404: "NOT_FOUND",
    422: "UNPROCESSABLE_ENTITY",
    429: "TOO_MANY_REQUESTS",
}


def problem(
    status: int,
    message: str,
    headers: Mapping[str, str] | None = None,
    background: BackgroundTask | None = None,
) -> JSONResponse:
    body = {"message": message, "status": _STATUS_NAMES.get(status) or HTTPStatus(status).name}
    return JSONResponse(body, status, headers, background=background)


def forbidden(what: str) -> ApiError:
    return ApiError(403, f"you may not read {what}")


def first_problem(error: RequestValidationError) -> str:
    """FastAPI's first complaint about a request, as one line naming the parameter."""
    detail = error.errors()[0]
    location = tuple(detail.get("loc", ()))
    if detail.get("type") == "json_invalid":
        return f"the request body is not valid JSON (at character {location[-1]})"
    where = [str(part) for part in location if part not in ("query", "path", "body")]
    message = "is required" if detail.get("type") == "missing" else in_our_words(detail)
    # a body may hold a password: only what was given in the URL is shown back
    if "input" in detail and detail.get("type") != "missing" and location[:1] != ("body",):
        return f"invalid {'.'.join(where) or 'request'} {shown(detail['input'])}: {message}"
    return f"{'.'.join(where) or 'request'}: {message}"
