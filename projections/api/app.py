"""The read API (FastAPI): FlexMeasures v3_0-compatible routes over the read models.

Read-only: it never records events, except a login when a token is issued (as FlexMeasures
does) and a failed login. Every route answers from the read models, caught up first if they
lag behind the log; if catching up fails, from the last consistent state.
"""

import ipaddress
import logging
import threading
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from importlib.metadata import version
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException

from ledger.application import Ledger
from ledger.domain import titles
from ledger.errors import LedgerError, ValidationError
from ledger.storage.settings import database_url
from ledger.validation import in_our_words, shown
from projections.api import policy, schemas
from projections.api.auth import (
    UNKNOWN_EMAIL,
    WRONG_CREDENTIALS,
    LoginRefused,
    TokenService,
    Unauthorized,
    token_ttl,
)
from projections.api.policy import Principal
from projections.api.schemas import UtcDateTime
from projections.api.throttle import LoginThrottle
from projections.models import AccountModel, UserModel
from projections.read_model import ReadModel

API_VERSIONS = ["v3_0"]
log = logging.getLogger(__name__)
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
token_header = APIKeyHeader(
    name="Authorization", auto_error=False, description="The token, or `Bearer <token>`"
)


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


def _problem(
    status: int,
    message: str,
    headers: Mapping[str, str] | None = None,
    background: BackgroundTask | None = None,
) -> JSONResponse:
    body = {"message": message, "status": _STATUS_NAMES.get(status) or HTTPStatus(status).name}
    return JSONResponse(body, status, headers, background=background)


class Services:
    """The ledger, the read models and the token service, opened on first use."""

    def __init__(self, url: str | None, token_ttl: int) -> None:
        self.url = database_url(url)
        self.token_ttl = token_ttl
        self.projection_failure: str | None = None  # why the last catch-up failed, if it did
        self._lock = threading.Lock()
        self._ledger: Ledger | None = None
        self._read_model: ReadModel | None = None
        self._tokens: TokenService | None = None

    def _open(self) -> None:
        if self._ledger is None:
            self._ledger = Ledger(self.url)
            self._read_model = ReadModel(self.url)
            self._tokens = TokenService(self._ledger, self.token_ttl)

    @property
    def ledger(self) -> Ledger:
        with self._lock:
            self._open()
        assert self._ledger is not None
        return self._ledger

    @property
    def tokens(self) -> TokenService:
        with self._lock:
            self._open()
        assert self._tokens is not None
        return self._tokens

    def reads(self) -> ReadModel:
        """The read models, caught up with the log; or, when projecting fails, as they stand
        (each page commits with its position, so that is a consistent state)."""
        with self._lock:
            self._open()
            assert self._ledger is not None and self._read_model is not None
            if (self._ledger.recorder.max_notification_id() or 0) > self._read_model.position():
                self._catch_up(self._read_model)
            return self._read_model

    def _catch_up(self, read_model: ReadModel) -> None:
        try:
            read_model.catch_up()
        except Exception as error:  # whatever failed, the last committed state stays good
            lines = str(error).strip().splitlines()
            failure = f"{type(error).__name__}: {lines[0] if lines else 'no message'}"
            if failure != self.projection_failure:  # one line per new failure, not per request
                log.error(
                    "projecting the log failed (%s); answering from position %d",
                    failure,
                    read_model.position(),
                )
            self.projection_failure = failure
        else:
            if self.projection_failure is not None:
                log.warning("projecting the log works again; the read models are caught up")
            self.projection_failure = None

    def close(self) -> None:
        if self._read_model is not None:
            self._read_model.close()
        if self._ledger is not None:
            self._ledger.close()


def create_app(url: str | None = None) -> FastAPI:
    """The read API over the ledger at `url` (else LEDGER_DATABASE_URL, else ledger.db).
    Raises ValidationError, naming the variable, on an invalid setting."""
    services = Services(url, token_ttl())
    throttle = LoginThrottle.from_environment()
    server_version = version("account-ledger")  # PEP 440, as FlexMeasures clients parse it
    app = FastAPI(
        title="Account Ledger read API",
        version=server_version,
        description="FlexMeasures v3_0-compatible reads of accounts, users and roles.",
    )
    app.state.services = services

    @app.middleware("http")
    async def version_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        """The headers FlexMeasures sends: its version on every response, the API version on
        the versioned routes."""
        response = await call_next(request)
        response.headers["FlexMeasures-Version"] = server_version
        if request.url.path.startswith("/api/v3_0/"):
            response.headers["API-Version"] = "v3_0"
        return response

    @app.exception_handler(ApiError)
    def api_error(_request: Request, error: ApiError) -> JSONResponse:
        return _problem(error.status, error.message, error.headers)

    @app.exception_handler(LedgerError)
    def ledger_error(_request: Request, error: LedgerError) -> JSONResponse:
        return _problem(422 if isinstance(error, ValidationError) else 404, str(error))

    @app.exception_handler(RequestValidationError)
    def invalid_request(_request: Request, error: RequestValidationError) -> JSONResponse:
        return _problem(422, _first_problem(error))

    @app.exception_handler(StarletteHTTPException)
    def http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        """The router's own answers (no such route, method not allowed) in the same shape."""
        return _problem(error.status_code, str(error.detail), error.headers)

    def caller(authorization: Annotated[str | None, Depends(token_header)]) -> Principal:
        try:
            recorded = services.tokens.authenticate(authorization)
        except Unauthorized as error:
            raise ApiError(401, str(error)) from None
        user = services.reads().get_user(recorded.id)
        if user is None:
            raise ApiError(401, "the token no longer grants access")
        # the roles as recorded, not as projected: a revoked role stops granting reads at once,
        # also while the read models lag behind the log
        return Principal(user=user, roles=frozenset(recorded.roles))

    Caller = Annotated[Principal, Depends(caller)]

    def account_or_404(rm: ReadModel, account_id: UUID) -> AccountModel:
        account = rm.get_account(account_id)
        if account is None:
            raise ApiError(404, f"account {account_id} not found")
        return account

    def user_or_404(rm: ReadModel, user_id: UUID) -> tuple[UserModel, AccountModel]:
        user = rm.get_user(user_id)
        if user is None:
            raise ApiError(404, f"user {user_id} not found")
        return user, account_or_404(rm, user.account_id)

    def forbidden(what: str) -> ApiError:
        return ApiError(403, f"you may not read {what}")

    @app.get("/api/", response_model=schemas.Versions)
    def versions() -> schemas.Versions:
        return schemas.Versions(
            flexmeasures_version=server_version,
            versions=API_VERSIONS,
            message="Account Ledger: FlexMeasures-compatible read API (v3_0)",
        )

    @app.get("/api/ops/ping", response_model=schemas.Ping)
    def ping() -> schemas.Ping:
        """As FlexMeasures' ping; `projection` says whether the last catch-up failed."""
        failing = services.projection_failure is not None
        return schemas.Ping(message="ok", projection="failing" if failing else "ok")

    @app.post(
        "/api/requestAuthToken",
        response_model=schemas.Token,
        responses={401: PROBLEMS[401], 422: PROBLEMS[422], 429: PROBLEMS[429]},
    )
    def request_auth_token(body: schemas.TokenRequest, request: Request) -> Any:
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
                return _problem(401, WRONG_CREDENTIALS)

            def record(user_id: UUID = found.id, reason: str = refused.reason) -> None:
                try:
                    ledger.record_failed_login(user_id, ip=address, reason_kind=reason)
                except LedgerError as error:
                    log.error("failed login of user %s not recorded: %s", user_id, error)

            # recorded once the answer is sent, so that writing the event does not make a
            # known email's answer slower than an unknown one's
            return _problem(401, WRONG_CREDENTIALS, background=BackgroundTask(record))
        assert found is not None  # a token is only ever issued for a known user
        throttle.succeeded(body.email)
        ledger.record_login(found.id, ip=address)
        return schemas.Token(auth_token=token)

    @app.get(
        "/api/v3_0/users", response_model=list[schemas.User] | schemas.UsersPage, responses=PROBLEMS
    )
    def list_users(
        me: Caller,
        account_id: UUID | None = None,
        include_inactive: bool = False,
        page: Annotated[int | None, Query(ge=1)] = None,
        per_page: Annotated[int, Query(ge=1, le=1000)] = 10,
        filter: str | None = None,
    ) -> Any:
        rm = services.reads()
        if account_id is not None:
            if not policy.can_read_account(me, account_or_404(rm, account_id)):
                raise forbidden(f"the users of account {account_id}")
            users = rm.list_users(account_id, include_inactive=include_inactive)
        else:
            readable = {
                a.id
                for a in rm.list_accounts(include_closed=True)
                if policy.can_read_account(me, a)
            }
            users = [
                u
                for u in rm.list_users(include_inactive=include_inactive)
                if u.account_id in readable
            ]
        return _page(
            [schemas.User.of(u) for u in users],
            page,
            per_page,
            filter,
            lambda u: (u.email, u.username),
            schemas.UsersPage,
        )

    @app.get("/api/v3_0/users/{id}", response_model=schemas.User, responses=PROBLEMS)
    def get_user(id: UUID, me: Caller) -> schemas.User:
        user, account = user_or_404(services.reads(), id)
        if not policy.can_read_user(me, user, account):
            raise forbidden(f"user {id}")
        return schemas.User.of(user)

    @app.get("/api/v3_0/users/{id}/auditlog", response_model=schemas.AuditLog, responses=PROBLEMS)
    def user_audit_log(id: UUID, me: Caller) -> schemas.AuditLog:
        rm = services.reads()
        user, account = user_or_404(rm, id)
        if not policy.can_read_user_audit_log(me, user, account):
            raise forbidden(f"the audit log of user {id}")
        return _audit_log(rm, id, me)

    @app.get("/api/v3_0/users/{id}/roles", response_model=schemas.UserRoles, responses=PROBLEMS)
    def user_roles(id: UUID, me: Caller, at: UtcDateTime | None = None) -> schemas.UserRoles:
        rm = services.reads()
        user, account = user_or_404(rm, id)
        if not policy.can_read_user(me, user, account):
            raise forbidden(f"user {id}")
        return schemas.UserRoles(user_id=id, at=at, roles=sorted(rm.roles(id, at=at)))

    @app.get(
        "/api/v3_0/accounts",
        response_model=list[schemas.Account] | schemas.AccountsPage,
        responses=PROBLEMS,
    )
    def list_accounts(
        me: Caller,
        page: Annotated[int | None, Query(ge=1)] = None,
        per_page: Annotated[int, Query(ge=1, le=1000)] = 10,
        filter: str | None = None,
    ) -> Any:
        accounts = [
            schemas.Account.of(a)
            for a in services.reads().list_accounts()
            if policy.can_read_account(me, a)
        ]
        return _page(accounts, page, per_page, filter, lambda a: (a.name,), schemas.AccountsPage)

    @app.get("/api/v3_0/accounts/{id}", response_model=schemas.Account, responses=PROBLEMS)
    def get_account(id: UUID, me: Caller) -> schemas.Account:
        account = account_or_404(services.reads(), id)
        if not policy.can_read_account(me, account):
            raise forbidden(f"account {id}")
        return schemas.Account.of(account)

    @app.get(
        "/api/v3_0/accounts/{id}/auditlog", response_model=schemas.AuditLog, responses=PROBLEMS
    )
    def account_audit_log(id: UUID, me: Caller) -> schemas.AuditLog:
        rm = services.reads()
        account = account_or_404(rm, id)
        if not policy.can_read_account_audit_log(me, account):
            raise forbidden(f"the audit log of account {id}")
        return _audit_log(rm, id, me)

    @app.get(
        "/api/v3_0/accounts/{id}/annotations",
        response_model=list[schemas.Annotation],
        responses=PROBLEMS,
    )
    def account_annotations(
        id: UUID,
        me: Caller,
        annotations_after: UtcDateTime | None = None,
        annotations_before: UtcDateTime | None = None,
        beliefs_after: UtcDateTime | None = None,
        beliefs_before: UtcDateTime | None = None,
        source: Annotated[list[str] | None, Query()] = None,
        annotation_starts_after: UtcDateTime | None = None,
        annotation_ends_before: UtcDateTime | None = None,
    ) -> list[schemas.Annotation]:
        rm = services.reads()
        account = account_or_404(rm, id)
        if not policy.can_read_account(me, account):
            raise forbidden(f"account {id}")
        found = rm.search_annotations(
            id,
            annotations_after=annotations_after or annotation_starts_after,
            annotations_before=annotations_before or annotation_ends_before,
            beliefs_after=beliefs_after,
            beliefs_before=beliefs_before,
            source=source,
        )
        assert isinstance(found, list)
        return [
            schemas.Annotation(
                id=a.id,
                account_id=a.account_id,
                content=a.content,
                start=a.start,
                end=a.end,
                belief_time=a.belief_time,
                source=str(a.source),
                type=a.type,
            )
            for a in found
        ]

    @app.get(
        "/api/v3_0/roles/{name}/holders", response_model=list[schemas.User], responses=PROBLEMS
    )
    def role_holders(name: str, me: Caller, at: UtcDateTime | None = None) -> list[schemas.User]:
        rm = services.reads()
        if name not in {r.name for r in rm.list_roles()}:
            raise ApiError(404, f"role {name!r} is not defined")
        accounts = {a.id: a for a in rm.list_accounts(include_closed=True)}
        return [
            schemas.User.of(u)
            for u in rm.users_with_role(name, at=at)
            if policy.can_read_user(me, u, accounts[u.account_id])
        ]

    return app


def _ip_address(host: str | None) -> str | None:
    """The client's address if it is an IP address (a test client's is a name)."""
    try:
        return str(ipaddress.ip_address(host or ""))
    except ValueError:
        return None


def _first_problem(error: RequestValidationError) -> str:
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


def _page(
    items: list[Any], page: int | None, per_page: int, text: str | None, fields: Any, envelope: Any
) -> Any:
    total = len(items)
    if text:
        needle = text.casefold()
        items = [i for i in items if any(needle in str(f).casefold() for f in fields(i))]
    if page is None:
        return items
    start = (page - 1) * per_page
    return envelope(
        data=items[start : start + per_page], num_records=total, filtered_records=len(items)
    )


def _audit_log(rm: ReadModel, aggregate_id: UUID, me: Principal) -> schemas.AuditLog:
    frame = rm.audit_log(aggregate_id)
    names: dict[UUID, str | None] = {}  # the actors' usernames, looked up once
    entries = []
    for row in frame.astype(object).where(frame.notna(), None).to_dict(orient="records"):
        actor = str(row["actor"])
        try:
            actor_id: UUID | None = UUID(actor)
        except ValueError:
            actor_id = None
        entries.append(
            schemas.AuditLogEntry(
                event=titles.title(str(row["event"]), row),
                event_type=row["event"],
                event_datetime=row["timestamp"],
                active_user_name=_username(rm, actor_id, me, names) if actor_id else actor,
                active_user_id=actor_id,
                reason=row.get("reason"),
            )
        )
    return schemas.AuditLog(audit_logs=entries)


def _username(
    rm: ReadModel, user_id: UUID, me: Principal, names: dict[UUID, str | None]
) -> str | None:
    """The acting user's username, if the caller may read that user (an actor from another
    tenant, e.g. a consultant or a platform admin, is shown by id alone)."""
    if user_id not in names:
        user = rm.get_user(user_id)
        account = None if user is None else rm.get_account(user.account_id)
        readable = (
            user is not None and account is not None and policy.can_read_user(me, user, account)
        )
        names[user_id] = user.username if readable and user else None
    return names[user_id]
