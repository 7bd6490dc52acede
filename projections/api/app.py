"""The read API (FastAPI): FlexMeasures v3_0-compatible routes over the read models.

Read-only: it never records events, except a login when a token is issued (as FlexMeasures
does). Every route answers from the read models, caught up first if they lag behind the log.
"""

import threading
from datetime import datetime
from importlib.metadata import version
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader

from ledger.application import Ledger
from ledger.errors import LedgerError, ValidationError
from ledger.storage.settings import database_url
from projections.api import policy, schemas
from projections.api.auth import WRONG_CREDENTIALS, TokenService, Unauthorized
from projections.api.policy import Principal
from projections.models import AccountModel, UserModel
from projections.read_model import ReadModel

API_VERSIONS = ["v3_0"]
PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {"model": schemas.Problem, "description": text}
    for status, text in (
        (401, "No, a bad or an expired token"),
        (403, "Not readable by the caller"),
        (404, "No such resource"),
        (422, "Invalid parameters"),
    )
}
token_header = APIKeyHeader(
    name="Authorization", auto_error=False, description="The token, or `Bearer <token>`"
)


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


_STATUS_NAMES = {
    401: "UNAUTHORIZED",
    403: "INVALID_SENDER",
    404: "NOT_FOUND",
    422: "UNPROCESSABLE_ENTITY",
}


class Services:
    """The ledger, the read models and the token service, opened on first use."""

    def __init__(self, url: str | None) -> None:
        self.url = database_url(url)
        self._lock = threading.Lock()
        self._ledger: Ledger | None = None
        self._read_model: ReadModel | None = None
        self._tokens: TokenService | None = None

    def _open(self) -> None:
        if self._ledger is None:
            self._ledger = Ledger(self.url)
            self._read_model = ReadModel(self.url)
            self._tokens = TokenService.for_ledger(self._ledger)

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
        """The read models, caught up with the log."""
        with self._lock:
            self._open()
            assert self._ledger is not None and self._read_model is not None
            if (self._ledger.recorder.max_notification_id() or 0) > self._read_model.position():
                self._read_model.catch_up()
            return self._read_model

    def close(self) -> None:
        if self._read_model is not None:
            self._read_model.close()
        if self._ledger is not None:
            self._ledger.close()


def create_app(url: str | None = None) -> FastAPI:
    """The read API over the ledger at `url` (else LEDGER_DATABASE_URL, else ledger.db)."""
    services = Services(url)
    app = FastAPI(
        title="Account Ledger read API",
        version=version("account-ledger"),
        description="FlexMeasures v3_0-compatible reads of accounts, users and roles.",
    )
    app.state.services = services

    @app.exception_handler(ApiError)
    def api_error(_request: Request, error: ApiError) -> JSONResponse:
        return JSONResponse(
            {"message": error.message, "status": _STATUS_NAMES.get(error.status, "ERROR")},
            error.status,
        )

    @app.exception_handler(LedgerError)
    def ledger_error(_request: Request, error: LedgerError) -> JSONResponse:
        status = 422 if isinstance(error, ValidationError) else 404
        return JSONResponse({"message": str(error), "status": _STATUS_NAMES[status]}, status)

    def caller(authorization: Annotated[str | None, Depends(token_header)]) -> Principal:
        try:
            user_id = services.tokens.authenticate(authorization)
        except Unauthorized as error:
            raise ApiError(401, str(error)) from None
        rm = services.reads()
        user = rm.get_user(user_id)
        if user is None:
            raise ApiError(401, "the token no longer grants access")
        return Principal(user=user, roles=frozenset(rm.roles(user_id)))

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
            flexmeasures_version=f"account-ledger {version('account-ledger')}",
            versions=API_VERSIONS,
            message="Account Ledger: FlexMeasures-compatible read API (v3_0)",
        )

    @app.post(
        "/api/requestAuthToken",
        response_model=schemas.Token,
        responses={401: PROBLEMS[401], 422: PROBLEMS[422]},
    )
    def request_auth_token(body: schemas.TokenRequest, request: Request) -> schemas.Token:
        found = services.reads().find_user_by_email(body.email)
        ledger = services.ledger
        if (
            found is None
            or not services.tokens.may_act(found.id)
            or not ledger.verify_password(found.id, body.password)
        ):
            raise ApiError(401, WRONG_CREDENTIALS)
        token = services.tokens.issue(found.id)
        address = request.client.host if request.client else None
        try:
            ledger.record_login(found.id, ip=address)
        except ValidationError:  # not an IP address (e.g. a test client)
            ledger.record_login(found.id)
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
        return _audit_log(rm, id)

    @app.get("/api/v3_0/users/{id}/roles", response_model=schemas.UserRoles, responses=PROBLEMS)
    def user_roles(id: UUID, me: Caller, at: datetime | None = None) -> schemas.UserRoles:
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
        return _audit_log(rm, id)

    @app.get(
        "/api/v3_0/accounts/{id}/annotations",
        response_model=list[schemas.Annotation],
        responses=PROBLEMS,
    )
    def account_annotations(
        id: UUID,
        me: Caller,
        annotations_after: datetime | None = None,
        annotations_before: datetime | None = None,
        beliefs_after: datetime | None = None,
        beliefs_before: datetime | None = None,
        source: Annotated[list[str] | None, Query()] = None,
        annotation_starts_after: datetime | None = None,
        annotation_ends_before: datetime | None = None,
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
    def role_holders(name: str, me: Caller, at: datetime | None = None) -> list[schemas.User]:
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


def _audit_log(rm: ReadModel, aggregate_id: UUID) -> schemas.AuditLog:
    frame = rm.audit_log(aggregate_id)
    names: dict[UUID, str] = {}  # the usernames of the actors that are users, looked up once
    entries = []
    for row in frame.astype(object).where(frame.notna(), None).to_dict(orient="records"):
        actor = str(row["actor"])
        try:
            actor_id: UUID | None = UUID(actor)
        except ValueError:
            actor_id = None
        entries.append(
            schemas.AuditLogEntry(
                event=_describe(row),
                event_type=row["event"],
                event_datetime=row["timestamp"],
                active_user_name=_username(rm, actor_id, names) if actor_id else actor,
                active_user_id=actor_id,
                reason=row.get("reason"),
            )
        )
    return schemas.AuditLog(audit_logs=entries)


def _username(rm: ReadModel, user_id: UUID, names: dict[UUID, str]) -> str:
    if user_id not in names:
        user = rm.get_user(user_id)
        names[user_id] = user.username if user else str(user_id)
    return names[user_id]


def _describe(row: dict[Any, Any]) -> str:
    event = str(row["event"])
    role = row.get("role")
    sentences = {
        "RoleGranted": f"role {role} granted",
        "RoleRevoked": f"role {role} revoked",
        "AccountRoleGranted": f"account role {role} granted",
        "AccountRoleRevoked": f"account role {role} revoked",
        "UserDeactivated": "user deactivated",
        "UserReactivated": "user reactivated",
        "UserCreated": "user created",
        "UserUpdated": "user updated",
        "LoginRecorded": "logged in",
        "LastSeenRecorded": "seen",
        "PasswordChanged": "password changed",
        "UserErased": "personal data erased",
        "AccountCreated": "account created",
        "AccountUpdated": "account updated",
        "ConsultancySet": "consultancy set",
        "AccountClosed": "account closed",
        "AnnotationAdded": "annotation added",
        "AnnotationRemoved": "annotation removed",
        "UserJoined": "user joined the account",
    }
    return sentences.get(event, event)
