"""Account Ledger: the write side (commands, domain, storage, audit, CLI)."""

from ledger.application import UNSET, Ledger
from ledger.errors import Conflict, InactiveUser, LedgerError, NotFound, ValidationError

__all__ = [
    "UNSET",
    "Conflict",
    "InactiveUser",
    "Ledger",
    "LedgerError",
    "NotFound",
    "ValidationError",
]
