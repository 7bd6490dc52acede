"""The read API (FastAPI): FlexMeasures v3_0-compatible routes over the read models.

Read-only: it never records events, except a login when a token is issued (as FlexMeasures
does) and a failed login. Every route answers from the read models, caught up first if they
lag behind the log; if catching up fails, from the last consistent state.

`create_app` wires the parts: the shared services (projections.api.services), the dependencies
the routes take (projections.api.dependencies), the routers by resource
(projections.api.routes) and one shape for every error (projections.api.errors).
"""

from importlib.metadata import version

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import URL, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ledger.errors import LedgerError, ValidationError
from projections.api.auth import token_ttl
from projections.api.dependencies import refusal
from projections.api.errors import ApiError, first_problem, problem
from projections.api.external_ids import answers_with_flexmeasures_ids
from projections.api.parameters import known_parameters_only
from projections.api.routes import ROUTERS
from projections.api.services import Services
from projections.api.throttle import LoginThrottle


class VersionHeaders:
    """The headers FlexMeasures sends: its version on every response, the API version on the
    versioned routes. Plain ASGI: as an `@app.middleware("http")` function (Starlette's
    BaseHTTPMiddleware, a task and a stream per request) it cost more than a bare route's
    whole answer."""

    def __init__(self, app: ASGIApp, server_version: str) -> None:
        self.app = app
        self.server_version = server_version

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        versioned = URL(scope=scope).path.startswith("/api/v3_0/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["FlexMeasures-Version"] = self.server_version
                if versioned:
                    headers["API-Version"] = "v3_0"
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(url: str | None = None) -> FastAPI:
    """The read API over the ledger at `url` (else LEDGER_DATABASE_URL, else ledger.db).
    Raises ValidationError, naming the variable, on an invalid setting."""
    answers_with_flexmeasures_ids()  # an invalid LEDGER_API_IDS stops the start
    services = Services(url, token_ttl())
    throttle = LoginThrottle.from_environment()
    server_version = version("account-ledger")  # PEP 440, as FlexMeasures clients parse it
    app = FastAPI(
        title="Account Ledger read API",
        version=server_version,
        description="FlexMeasures v3_0-compatible reads of accounts, users and roles.",
        dependencies=[Depends(known_parameters_only)],
    )
    app.state.services = services
    app.state.throttle = throttle

    app.add_middleware(VersionHeaders, server_version=server_version)

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, error: ApiError) -> JSONResponse:
        return problem(error.status, error.message, error.headers)

    @app.exception_handler(LedgerError)
    async def ledger_error(_request: Request, error: LedgerError) -> JSONResponse:
        return problem(422 if isinstance(error, ValidationError) else 404, str(error))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        refused = await refusal(request)  # a bad token answers 401 whatever else is wrong
        if refused is not None:
            return problem(refused.status, refused.message, refused.headers)
        return problem(422, first_problem(error))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        """The router's own answers (no such route, method not allowed) in the same shape."""
        return problem(error.status_code, str(error.detail), error.headers)

    for router in ROUTERS:
        app.include_router(router)
    return app
