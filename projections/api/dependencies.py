"""The read API's shared dependencies, injected into the routes the FastAPI way: the app's
services, the authenticated caller and the read models."""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, TypeVar
from uuid import UUID

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader

from projections.api.auth import NotInLoop, Recorded, TokenService, Unauthorized
from projections.api.errors import ApiError
from projections.api.external_ids import ExternalIds, answers_with_flexmeasures_ids
from projections.api.policy import Principal
from projections.api.services import Services
from projections.api.throttle import LoginThrottle
from projections.api.workers import in_worker
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


def _recorded(tokens: TokenService, authorization: str | None, in_loop: bool = False) -> Recorded:
    try:
        return tokens.authenticate(authorization, in_loop=in_loop)
    except Unauthorized as error:
        raise ApiError(401, str(error)) from None


def _principal(recorded: Recorded, read_model: ReadModel) -> tuple[Principal, ReadModel]:
    # the caller and their roles as recorded, not as projected: a move or a revoked role
    # counts at once, also while the read models lag behind the log (or fail to catch up); a
    # grant past its `until` grants nothing, whether or not its expiry has been recorded yet
    user = recorded.user
    return Principal(user=user, roles=frozenset(user.held_now(datetime.now(UTC)))), read_model


def caller(authorization: str | None, services: Services) -> Principal:
    """The user whose token came with the request; 401 without one that still grants access."""
    return authenticated(authorization, services)[0]


class Reading:
    """What every authenticated read route runs its work with: `await read(work)` calls
    `work(me, rm, ids)` with the caller its token names, the read models (caught up) and the
    ids as the API shows them, and answers what `work` returns (or raises); a plain `def`
    route whose answer grows with the data calls `read.in_thread(work)`. The token check
    and the work run together, in one place: in the event loop where reads never wait
    (`Services.reads_in_loop`: SQLite in WAL mode), else in one worker thread. Anything in the
    loop that would need more than a read on the loop's own connection or the read models'
    pool (the signing secret read, a user rebuilt from their events, a catch-up, a look-up in
    the ledger's side tables) raises `NotInLoop`, and the whole runs again in a thread: it
    only read, so it changed nothing."""

    def __init__(self, services: Services, authorization: str | None) -> None:
        self.services = services
        self.authorization = authorization

    async def __call__(self, work: Callable[[Principal, ReadModel, ExternalIds], T]) -> T:
        opened = self.services.opened()
        if opened is not None and self.services.reads_in_loop:
            try:
                return self._in_loop(*opened, work)
            except NotInLoop:
                pass
        return await in_worker(self.in_thread, work)

    def _in_loop(
        self,
        tokens: TokenService,
        read_model: ReadModel,
        work: Callable[[Principal, ReadModel, ExternalIds], T],
    ) -> T:
        recorded = _recorded(tokens, self.authorization, in_loop=True)
        if recorded.log_head > recorded.projected:
            raise NotInLoop  # a catch-up writes, and waits for the lock another holds
        me, rm = _principal(recorded, read_model)
        ledger = self.services.opened_ledger()
        assert ledger is not None, "opened with the token service"
        return work(me, rm, ExternalIds(ledger, answers_with_flexmeasures_ids(), in_loop=True))

    def in_thread(self, work: Callable[[Principal, ReadModel, ExternalIds], T]) -> T:
        """`work` run here, in a worker thread: the way of a route whose answer grows with the
        data (a list, an audit log), so that building and validating it never holds up the
        event loop's other requests (FastAPI validates a plain `def` route's answer in a
        worker thread too)."""
        me, rm = authenticated(self.authorization, self.services)
        return work(me, rm, ExternalIds(self.services.ledger, answers_with_flexmeasures_ids()))


async def reading(
    request: Request, authorization: Annotated[str | None, Depends(token_header)]
) -> Reading:
    """A read route's `Reading`. It checks nothing yet: a request whose parameters are
    invalid is checked by the handler of that error (`refusal`), so a bad token still answers
    401 before a bad parameter's 422. The services are taken from the app, not as a
    dependency of their own: FastAPI walks each dependency's dependencies on every request."""
    found = Reading(request.app.state.services, authorization)
    request.state.reading = found
    return found


Read = Annotated[Reading, Depends(reading)]


async def refusal(request: Request) -> ApiError | None:
    """Why a read route's request is refused whatever else it asks (a token that does not
    grant access), if it is a read route's and it is."""
    found: Reading | None = getattr(request.state, "reading", None)
    if found is None:
        return None
    try:
        await found(_nothing)
    except ApiError as refused:
        return refused
    return None


def _nothing(_me: Principal, _rm: ReadModel, _ids: ExternalIds) -> None:
    return None


async def external_ids(services: AppServices) -> ExternalIds:
    ledger = services.opened_ledger()
    if ledger is None:  # opening it may wait (on the database, on a catch-up): not in the loop
        ledger = await in_worker(lambda: services.ledger)
    return ExternalIds(ledger, answers_with_flexmeasures_ids())


Ids = Annotated[ExternalIds, Depends(external_ids)]


def account_or_404(rm: ReadModel, account_id: UUID) -> AccountModel:
    account = rm.get_account(account_id)
    if account is None:
        raise ApiError(404, f"account {account_id} not found")
    return account


def user_or_404(rm: ReadModel, user_id: UUID) -> tuple[UserModel, AccountModel]:
    user, _ends, account = user_and_role_ends_or_404(rm, user_id)
    return user, account


def user_and_role_ends_or_404(
    rm: ReadModel, user_id: UUID
) -> tuple[UserModel, dict[str, datetime], AccountModel]:
    """The user, their role ends now (`rm.role_ends`) and their account, read together."""
    found = rm.get_user_with_account(user_id)
    if found is None:
        raise ApiError(404, f"user {user_id} not found")
    user, ends, account = found
    if account is None:
        raise ApiError(404, f"account {user.account_id} not found")
    return user, ends, account
