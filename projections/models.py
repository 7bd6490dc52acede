"""What the queries return: pydantic models of users, accounts, roles and annotations."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class RoleModel(_Model):
    """A user role from `list_roles()`."""

    name: str
    description: str | None = None


class AccountRoleModel(_Model):
    """An account role from `list_account_roles()`."""

    name: str
    description: str | None = None


class UserModel(_Model):
    id: UUID
    email: str
    username: str
    account_id: UUID
    timezone: str
    active: bool
    erased: bool = False
    roles: list[str]
    """Roles held, whether or not the user is active (see `ReadModel.roles` for effective)."""
    login_count: int
    last_login_at: datetime | None
    last_seen_at: datetime | None
    created_at: datetime


class AccountModel(_Model):
    id: UUID
    name: str
    primary_color: str | None
    secondary_color: str | None
    logo_url: str | None
    consultancy_account_id: UUID | None
    account_roles: list[str]
    closed: bool
    created_at: datetime


class AnnotationModel(_Model):
    id: UUID
    account_id: UUID
    content: str
    start: datetime
    end: datetime
    belief_time: datetime | None
    source: str | UUID
    """A source name, or the id of the user who is the source."""
    type: str


def is_user(obj: Any) -> bool:
    """True for a user model, or for a proxy of one (anything with `_get_current_object()`)."""
    if isinstance(obj, UserModel):
        return True
    unwrap = getattr(obj, "_get_current_object", None)
    if callable(unwrap):
        try:
            return isinstance(unwrap(), UserModel)
        except Exception:  # an unbound proxy (no request context) is not a user
            return False
    return False
