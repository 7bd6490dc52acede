"""One attempt at one command: the aggregates it loaded or created and the side rows it writes."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Repository

from ledger.domain import LedgerAggregate, Meta
from ledger.errors import NotFound
from ledger.storage.side_tables import SideWrite

A = TypeVar("A", bound=LedgerAggregate)


class UnitOfWork:
    def __init__(self, repository: Repository[UUID], meta: Meta) -> None:
        self.repository = repository
        self.meta = meta
        self.side_writes: list[SideWrite] = []
        self.after_commit: list[Callable[[], None]] = []
        self._aggregates: dict[UUID, LedgerAggregate] = {}

    def load(self, cls: type[A], aggregate_id: UUID, what: str) -> A:
        """The aggregate, loaded once per unit of work; NotFound if absent or of another kind."""
        aggregate = self._aggregates.get(aggregate_id)
        if aggregate is None:
            try:
                aggregate = self.repository.get(aggregate_id)
            except AggregateNotFoundError:
                raise NotFound(f"{what} {aggregate_id} not found") from None
        if not isinstance(aggregate, cls):
            raise NotFound(f"{what} {aggregate_id} not found")
        self._aggregates[aggregate_id] = aggregate
        return aggregate

    def exists(self, cls: type[LedgerAggregate], aggregate_id: UUID) -> bool:
        try:
            self.load(cls, aggregate_id, cls.__name__)
        except NotFound:
            return False
        return True

    def add(self, aggregate: LedgerAggregate) -> None:
        self._aggregates[aggregate.id] = aggregate

    def write(self, *writes: SideWrite) -> None:
        self.side_writes.extend(writes)

    def changed(self) -> list[LedgerAggregate]:
        """Aggregates with new events, the newly created first (so their events come first)."""
        changed = [a for a in self._aggregates.values() if a.pending_events]
        return sorted(changed, key=lambda a: a.pending_events[0].originator_version != 1)
