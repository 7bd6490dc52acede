"""Test helpers that look at the database directly, below the public API."""

from __future__ import annotations

from typing import Any

from ledger import Ledger

SIDE_TABLES = ("ledger_claims", "ledger_commands", "ledger_user_keys", "ledger_credentials")


def stored_state(led: Ledger) -> tuple[Any, ...]:
    """Everything a rejected command must leave unchanged: the events and the side tables."""
    counts = []
    for table in SIDE_TABLES:
        row = led.side.select_one(f"SELECT COUNT(*) AS n FROM {table}", ())
        assert row is not None
        counts.append(row["n"])
    return (led.recorder.max_notification_id(), *counts)


def event_names(led: Ledger) -> list[str]:
    return [
        n.topic.rsplit(".", 1)[-1]
        for n in led.recorder.select_notifications(start=1, limit=1_000_000)
    ]
