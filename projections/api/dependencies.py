"""The read API's shared dependencies, injected into the routes the FastAPI way: the app's
services, the authenticated caller and the read models."""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, TypeVar
from uuid import UUID

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader

from projections.api.auth import NotInLoop, Recorded, TokenService, Unauthorized
from projections.api.errors import ApiError
from projections.api.external_ids import ExternalIds, answers_with_flexmeasures_ids
from projections.api.policy import Principal
from projections.api.services import Services
from projections.api.throttle import LoginThrottle
from projections.models import AccountModel, UserModel
from projections.read_model import ReadModel

T = TypeVar("T")
token_header = APIKeyHeader(
    name="Authorization", auto_error=False, description="The token, or `Bearer <token>`"
)


async def get_services(request: Request) -> Services:
    """The services `create_app` opened for this app."""
    found: Services = request.app.state.services
    return found


async def get_throttle(request: Request) -> LoginThrottle:
    found: LoginThrottle = request.app.state.throttle
    return found


# The dependencies that only look something up are `async def`: FastAPI runs a plain `def` one
# in its thread pool, a thread hop each, which counted in every request.
AppServices = Annotated[Services, Depends(get_services)]
Throttle = Annotated[LoginThrottle, Depends(get_throttle)]


def authenticated(authorization: str | None, services: Services) -> tuple[Principal, ReadModel]:
    """The user whose token came with the request, and the read models, caught up; 401
    without a token that still grants access."""
    recorded = _recorded(services.tokens, authorization)
    return _principal(recorded, services.reads((recorded.log_head, recorded.projected)))


async def authenticated_in_loop(
    authorization: str | None, services: Services
) -> tuple[Principal, ReadModel]:
    """`authenticated`, in the event loop where its reads never wait (`Services.reads_in_loop`:
    SQLite in WAL mode; a thread hop cost more than the reads): the token's one confirming
    query and the caller's read-model user, on the loop's own connection. Anything that may
    wait goes to a worker thread: opening the services, a check needing more than that query
    (`NotInLoop`), a catch-up (it writes), and everything on PostgreSQL."""
    opened = services.opened()
    if opened is None or not services.reads_in_loop:
        return await run_in_threadpool(authenticated, authorization, services)
    tokens, read_model = opened
    try:
        recorded = _recorded(tokens, authorization, in_loop=True)
    except NotInLoop:
        return await run_in_threadpool(authenticated, authorization, services)
    if recorded.log_head > recorded.projected:
        seen = (recorded.log_head, recorded.projected)
        read_model = await run_in_threadpool(services.reads, seen)
    return _principal(recorded, read_model)


def _recorded(tokens: TokenService, authorization: str | None, in_loop: bool = False) -> Recorded:
    try:
        return tokens.authenticate(authorization, in_loop=in_loop)
    except Unauthorized as error:
        raise ApiError(401, str(error)) from None


def _principal(recorded: Recorded, read_model: ReadModel) -> tuple[Principal, ReadModel]:
    user = read_model.get_user(recorded.user.id)
    if user is None:
        raise ApiError(401, "the token no longer grants access")
    # the roles as recorded, not as projected: a revoked role stops granting reads at once,
    # also while the read models lag behind the log; a grant past its `until` grants nothing,
    # whether or not its expiry has been recorded yet
    return Principal(
        user=user, roles=frozenset(recorded.user.held_now(datetime.now(UTC)))
    ), read_model


def caller(authorization: str | None, services: Services) -> Principal:
    """The user whose token came with the request; 401 without one that still grants access."""
    return authenticated(authorization, services)[0]


async def request_caller(
    request: Request, authorization: Annotated[str | None, Depends(token_header)]
) -> Principal:
    """`caller`, keeping the read models it caught up for the route (`Reads`): one look at
    the log's head a request. The services are taken from the app, not as a dependency of
    their own: FastAPI walks each dependency's dependencies on every request, cached or not,
    and every route depends on this one."""
    services: Services = request.app.state.services
    me, request.state.read_model = await authenticated_in_loop(authorization, services)
    return me


async def in_loop_or_thread(services: Services, work: Callable[[], T], *, loop: bool = True) -> T:
    """`work()` (reads of the read models on the reader's own connection), in the event loop
    where reads never wait, else (or `loop=False`: reads through a pool) in a worker thread."""
    if loop and services.reads_in_loop:
        return work()
    return await run_in_threadpool(work)


Caller = Annotated[Principal, Depends(request_caller)]


def caller_reads(request: Request) -> tuple[Services, ReadModel, ExternalIds]:
    """For a route that took `Caller` (so the services are open): the services, the read
    models `Reads` gives and the ids `Ids` gives, without their dependencies' walk."""
    services: Services = request.app.state.services
    ledger = services.opened_ledger()
    assert ledger is not None, "the caller is authenticated first"
    found: ReadModel = request.state.read_model
    return services, found, ExternalIds(ledger, answers_with_flexmeasures_ids())


async def external_ids(services: AppServices) -> ExternalIds:
    ledger = services.opened_ledger()
    if ledger is None:  # opening it may wait (on the database, on a catch-up): not in the loop
        ledger = await run_in_threadpool(lambda: services.ledger)
    return ExternalIds(ledger, answers_with_flexmeasures_ids())


Ids = Annotated[ExternalIds, Depends(external_ids)]


async def reads(request: Request, _caller: Caller) -> ReadModel:
    """The read models, caught up, for an authenticated caller (authenticated first)."""
    found: ReadModel = request.state.read_model
    return found


Reads = Annotated[ReadModel, Depends(reads)]


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


def user_and_role_ends_or_404(
    rm: ReadModel, user_id: UUID
) -> tuple[UserModel, dict[str, datetime], AccountModel]:
    """`user_or_404`, and the user's role ends now (`rm.role_ends`), read with the user."""
    found = rm.get_user_and_role_ends(user_id)
    if found is None:
        raise ApiError(404, f"user {user_id} not found")
    user, ends = found
    return user, ends, account_or_404(rm, user.account_id)
