"""Storage: one URL to the event store, the side tables written with the events, encryption."""

from ledger.storage.settings import DEFAULT_URL, database_url, eventsourcing_env

__all__ = ["DEFAULT_URL", "database_url", "eventsourcing_env"]
