"""The aggregates one command (or one batch of commands) loaded or created, the side rows it
writes, and the claims and command ids it made, so later commands of a batch see them."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar, cast
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Repository

from ledger.domain import LedgerAggregate, Meta, project
from ledger.errors import NotFound
from ledger.storage.side_tables import SideWrite

A = TypeVar("A", bound=LedgerAggregate)
_RELEASED = None


class KnownAbsent:
    """Singleton aggregates (the separation-of-duties policy, which most ledgers never create)
    found absent, so that an optimistic unit of work need not ask the database again on every
    grant: it takes one as absent unconfirmed, at version 0, like an aggregate taken from the
    cache, and the caller confirms it the same way (a read guard in the save, or a query)."""

    def __init__(self, watched: Iterable[UUID]) -> None:
        self.watched = frozenset(watched)
        self.ids: set[UUID] = set()

    def found_absent(self, aggregate_id: UUID) -> None:
        if aggregate_id in self.watched:
            self.ids.add(aggregate_id)

    def found(self, aggregate_id: UUID) -> None:
        self.ids.discard(aggregate_id)


class UnitOfWork:
    """`optimistic`: take cached aggregates as they are, without asking the database for newer
    events. Each one is noted in `unverified` with the version it was taken at; the caller
    must confirm them before it trusts the outcome (see `Runner.run`). `batched`: it holds
    many commands, saved together after the last (see `ledger.batch`)."""

    def __init__(
        self,
        repository: Repository[UUID],
        meta: Meta,
        *,
        optimistic: bool = False,
        batched: bool = False,
        known_absent: KnownAbsent | None = None,
    ) -> None:
        self.repository = repository
        self.known_absent = known_absent
        self.meta = meta
        self.optimistic = optimistic
        self.batched = batched
        self.unverified: dict[UUID, int] = {}
        # aggregates read from the database, at the version read (0: found absent): a refusal
        # is confirmed against them, since two reads may straddle another writer's commit
        self.fetched: dict[UUID, int] = {}
        self.side_writes: list[SideWrite] = []
        self.after_commit: list[Callable[[], None]] = []
        self.claims: dict[tuple[str, str], UUID | None] = {}
        self.command_results: dict[str, tuple[str, Any]] = {}
        self.commands_not_applied: set[str] = set()  # looked up: not in the command table
        # aggregates a permission check read, at the version read: the save fails if another
        # writer changed one before it commits (see `read_guards_left`)
        self.read_guards: dict[UUID, int] = {}
        self._aggregates: dict[UUID, LedgerAggregate] = {}
        # ids found to name nothing: asked again (the policy, by every grant of a batch), they
        # still name nothing unless this unit of work adds them (`add` is looked at first)
        self._absent: set[UUID] = set()
        self._touched: dict[UUID, int] = {}
        self._writes_mark = 0

    def begin_command(self, meta: Meta) -> None:
        """Start the next command of this unit of work."""
        self.meta = meta
        self._touched = {}
        self._writes_mark = len(self.side_writes)

    def command_changed(self) -> bool:
        """Whether the current command recorded anything."""
        return len(self.side_writes) > self._writes_mark or any(
            len(self._aggregates[aggregate_id].pending_events) > before
            for aggregate_id, before in self._touched.items()
        )

    def load(self, cls: type[A], aggregate_id: UUID, what: str) -> A:
        """The aggregate, loaded once per unit of work; NotFound if absent or of another kind."""
        aggregate = self._aggregates.get(aggregate_id)
        if aggregate is None:
            if aggregate_id in self._absent:
                raise NotFound(f"{what} {aggregate_id} not found")
            aggregate = self._fetch(aggregate_id, what)
        if not isinstance(aggregate, cls):
            raise NotFound(f"{what} {aggregate_id} not found")
        self._aggregates[aggregate_id] = aggregate
        self._touched.setdefault(aggregate_id, len(aggregate.pending_events))
        return aggregate

    def _fetch(self, aggregate_id: UUID, what: str) -> LedgerAggregate:
        cache = self.repository.cache
        known_absent = self.known_absent
        if self.optimistic and known_absent is not None and aggregate_id in known_absent.ids:
            self.unverified[aggregate_id] = 0
            self._absent.add(aggregate_id)
            raise NotFound(f"{what} {aggregate_id} not found")
        if self.optimistic and cache is not None:
            try:
                cached = cast(LedgerAggregate, cache.get(aggregate_id))
            except KeyError:
                pass
            else:
                self.unverified[aggregate_id] = cached.version
                return cached.clone()
        try:
            found = cast(LedgerAggregate, self.repository.get(aggregate_id, projector_func=project))
        except AggregateNotFoundError:
            self._absent.add(aggregate_id)
            self.fetched.setdefault(aggregate_id, 0)
            if known_absent is not None:
                known_absent.found_absent(aggregate_id)
            raise NotFound(f"{what} {aggregate_id} not found") from None
        self.fetched.setdefault(aggregate_id, found.version)
        if known_absent is not None:
            known_absent.found(aggregate_id)
        return found

    def unverified_unchanged(self) -> list[tuple[UUID, int]]:
        """(id, version) of the aggregates taken from the cache unconfirmed that this unit of
        work leaves unchanged: nothing in the save will catch it if they were stale."""
        unchanged = []
        for aggregate_id, version in self.unverified.items():
            aggregate = self._aggregates.get(aggregate_id)  # None: rejected as the wrong kind
            if aggregate is None or not aggregate.pending_events:
                unchanged.append((aggregate_id, version))
        return unchanged

    def exists(self, cls: type[LedgerAggregate], aggregate_id: UUID) -> bool:
        try:
            self.load(cls, aggregate_id, cls.__name__)
        except NotFound:
            return False
        return True

    def holds(self, aggregate_id: UUID) -> bool:
        return aggregate_id in self._aggregates

    def add_loaded(self, aggregate: LedgerAggregate) -> None:
        """An aggregate loaded ahead of the commands that will use it (see `Runner.preload`)."""
        self._aggregates[aggregate.id] = aggregate

    def add(self, aggregate: LedgerAggregate) -> None:
        self._aggregates[aggregate.id] = aggregate
        self._touched.setdefault(aggregate.id, 0)

    def write(self, *writes: SideWrite) -> None:
        self.side_writes.extend(writes)

    def claimed(self, kind: str, key: str) -> tuple[bool, UUID | None]:
        """(known, owner) for a claim this unit of work made or released."""
        if (kind, key) in self.claims:
            return True, self.claims[(kind, key)]
        return False, None

    def read_guards_left(self) -> list[tuple[UUID, int]]:
        """The read guards of aggregates this unit of work leaves unchanged (a changed one is
        guarded by its own new version, which a concurrent writer's would clash with)."""
        return [
            (aggregate_id, version)
            for aggregate_id, version in self.read_guards.items()
            if not self._aggregates[aggregate_id].pending_events
        ]

    def changed(self) -> list[LedgerAggregate]:
        """Aggregates with new events, the newly created first (so their events come first)."""
        changed = [a for a in self._aggregates.values() if a.pending_events]
        return sorted(changed, key=lambda a: a.pending_events[0].originator_version != 1)
