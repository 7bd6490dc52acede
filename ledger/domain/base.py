"""What every aggregate and event of the ledger shares: who did it, why, and under which key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from eventsourcing.domain import Aggregate

ERASED: Final = "[erased]"
"""Shown in place of personal data whose key was deleted by `erase_user`."""


@dataclass(frozen=True)
class Meta:
    """The metadata every event of one command carries."""

    actor: str
    reason: str | None
    command_id: str | None
    timestamp: datetime

    def fields(self) -> dict[str, Any]:
        return {
            "actor": self.actor,
            "reason": self.reason,
            "command_id": self.command_id,
            "timestamp": self.timestamp,
        }


class LedgerAggregate(Aggregate):
    class Event(Aggregate.Event):
        actor: str
        reason: str | None
        command_id: str | None

    class Created(Event, Aggregate.Created):
        pass

    def record(self, event_class: type[Aggregate.Event], meta: Meta, **fields: Any) -> None:
        """Trigger one event: the only way state changes after creation."""
        self.trigger_event(event_class, **meta.fields(), **fields)
