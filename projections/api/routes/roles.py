"""`GET /api/v3_0/roles/{name}/holders`: the effective holders of a role (now or at `at`) that
the caller may read."""

from fastapi import APIRouter

import projections.api.policy as policy
import projections.api.schemas as schemas
from projections.api.dependencies import Caller, Reads
from projections.api.errors import PROBLEMS, ApiError
from projections.api.schemas import UtcDateTime

router = APIRouter()


@router.get("/api/v3_0/roles/{name}/holders", response_model=list[schemas.User], responses=PROBLEMS)
def role_holders(
    name: str, me: Caller, rm: Reads, at: UtcDateTime | None = None
) -> list[schemas.User]:
    if name not in {r.name for r in rm.list_roles()}:
        raise ApiError(404, f"role {name!r} is not defined")
    accounts = {a.id: a for a in rm.list_accounts(include_closed=True)}
    return [
        schemas.User.of(u)
        for u in rm.users_with_role(name, at=at)
        if policy.can_read_user(me, u, accounts[u.account_id])
    ]
