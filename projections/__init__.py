"""Account Ledger: the read side (read models, projector, queries, HTTP read API)."""

from projections.models import (
    AccountModel,
    AccountRoleModel,
    AnnotationModel,
    RoleModel,
    UserModel,
    is_user,
)
from projections.projector import ProjectionError
from projections.read_model import ReadModel

__all__ = [
    "AccountModel",
    "AccountRoleModel",
    "AnnotationModel",
    "ProjectionError",
    "ReadModel",
    "RoleModel",
    "UserModel",
    "is_user",
]
