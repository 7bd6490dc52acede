"""`GET /api/v3_0/roles/{name}/holders`: the effective holders of a role (now or at `at`) that
the caller may read."""

from fastapi import APIRouter

import projections.api.policy as policy
import projections.api.schemas as schemas
from projections.api.dependencies import Read
from projections.api.errors import PROBLEMS, ApiError
from projections.api.external_ids import ExternalIds
from projections.api.policy import Principal
from projections.api.schemas import UtcDateTime
from projections.read_model import ReadModel

router = APIRouter()


@router.get("/api/v3_0/roles/{name}/holders", response_model=list[schemas.User], responses=PROBLEMS)
def role_holders(name: str, read: Read, at: UtcDateTime | None = None) -> list[schemas.User]:
    def answer(me: Principal, rm: ReadModel, _ids: ExternalIds) -> list[schemas.User]:
        if name not in {r.name for r in rm.list_roles()}:
            raise ApiError(404, f"role {name!r} is not defined")
        accounts = {a.id: a for a in rm.list_accounts(include_closed=True)}
        return [
            schemas.User.of(u)
            for u in rm.users_with_role(name, at=at)
            if policy.can_read_user(me, u, accounts[u.account_id])
        ]

    return read.in_thread(answer)
