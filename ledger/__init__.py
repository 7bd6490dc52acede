"""Account Ledger: the write side (commands, domain, storage, audit, CLI).

`Ledger` and `UNSET` are imported on first use, so a process that needs only a light module
(the chain verifier's workers) does not load the whole application."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ledger.errors import (
    Conflict,
    InactiveUser,
    LedgerError,
    NotFound,
    PermissionDenied,
    ValidationError,
)

if TYPE_CHECKING:
    from ledger.application import UNSET, Ledger

__all__ = [
    "UNSET",
    "Conflict",
    "InactiveUser",
    "Ledger",
    "LedgerError",
    "NotFound",
    "PermissionDenied",
    "ValidationError",
]


def __getattr__(name: str) -> Any:
    if name in ("Ledger", "UNSET"):
        from ledger import application

        return getattr(application, name)
    raise AttributeError(f"module 'ledger' has no attribute {name!r}")
