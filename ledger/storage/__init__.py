"""Storage: one URL to the event store, the side tables written with the events, encryption.

The settings are imported on first use (see `ledger/__init__.py`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ledger.storage.settings import DEFAULT_URL, database_url, eventsourcing_env

__all__ = ["DEFAULT_URL", "database_url", "eventsourcing_env"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from ledger.storage import settings

        return getattr(settings, name)
    raise AttributeError(f"module 'ledger.storage' has no attribute {name!r}")
