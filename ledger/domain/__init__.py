"""The domain: aggregates and their events, free of I/O."""

from ledger.domain.accounts import Account, AnnotationKey
from ledger.domain.base import ERASED, LedgerAggregate, Meta, project
from ledger.domain.journal import AccessDenial
from ledger.domain.reviews import ReviewCampaign
from ledger.domain.roles import AccountRole, Role
from ledger.domain.sources import ExternalSource
from ledger.domain.users import DEFAULT_TIMEZONE, User

__all__ = [
    "DEFAULT_TIMEZONE",
    "ERASED",
    "AccessDenial",
    "Account",
    "AccountRole",
    "AnnotationKey",
    "ExternalSource",
    "LedgerAggregate",
    "Meta",
    "ReviewCampaign",
    "Role",
    "User",
    "project",
]
