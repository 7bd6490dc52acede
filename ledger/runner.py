"""The one runner of commands: idempotency by `command_id`, decisions on cached aggregates
confirmed before they are trusted, retries on contention with back-off, and batches.

`run(command, batch=None)` runs one command in its own transaction; given a batch (a unit of
work of many commands), it runs the command in it, to be saved when the batch commits.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar, cast
from uuid import UUID

from eventsourcing.application import Repository
from eventsourcing.persistence import IntegrityError, OperationalError, StoredEvent

from ledger.commands import permissions, registry
from ledger.commands.base import Command, Services
from ledger.domain import AccessDenial, LedgerAggregate, Meta, project
from ledger.domain.separation import POLICY_ID
from ledger.errors import Conflict, LedgerError
from ledger.storage.command_log import CommandLog
from ledger.storage.recorders import SideTableRecorder
from ledger.storage.side_tables import SideWrite
from ledger.unit_of_work import KnownAbsent, UnitOfWork
from ledger.validation import Moment, valid

R = TypeVar("R")


def is_contention(error: Exception) -> bool:
    """Whether a failed save clashed with another writer (worth running the command again on
    fresh state) rather than met a fault. SQLite reports a missing table or a read-only file as
    an OperationalError too, as it does a lock held too long."""
    cause = error.__cause__
    if isinstance(error, OperationalError) and isinstance(cause, sqlite3.OperationalError):
        return any(word in str(cause).lower() for word in ("locked", "busy"))
    return isinstance(error, IntegrityError | OperationalError)


@dataclass(frozen=True)
class Outcome(Generic[R]):
    """A command's result, and whether it recorded anything (False for a no-op, or for a
    command id applied before)."""

    result: R
    recorded: bool


Save = Callable[..., Any]
Decode = Callable[[Sequence[StoredEvent]], list[Any]]


class Runner:
    """Runs commands against one ledger's repository and side tables."""

    def __init__(
        self,
        *,
        repository: Repository[UUID],
        side: SideTableRecorder,
        save: Save,
        decode: Decode,
        clock: Callable[[], datetime],
        command_log: CommandLog,
        services: Services,
        max_attempts: int,
    ) -> None:
        self.repository = repository
        self.side = side
        self.save = save
        self.decode = decode
        self.clock = clock
        self.command_log = command_log
        self.services = services
        self.max_attempts = max_attempts
        self.known_absent = KnownAbsent([POLICY_ID])

    def meta(self, actor: str, reason: str | None, command_id: str | None) -> Meta:
        now = self.clock()
        if type(now) is not datetime or now.tzinfo is not UTC:  # else valid as it is, unchanged
            now = valid(Moment, now, "clock time")
        return Meta(actor, reason, command_id, now)

    def run(self, command: Command[R], batch: UnitOfWork | None = None) -> Outcome[R]:
        entry = registry.entry_of(type(command))
        fingerprint = ""
        if command.command_id is not None:
            fingerprint = self.command_log.fingerprint(command.command, command.fingerprint_args())
        if batch is None:
            try:
                outcome = self._run_alone(command, entry.handler, fingerprint)
            finally:
                # emails and usernames are personal data: no longer than the command needs
                # them (another process may erase their user meanwhile)
                self.services.claims.forget_keys()
        else:
            outcome = self._run_in_batch(command, entry.handler, fingerprint, batch)
        if entry.after_run is not None:
            entry.after_run(command, self.services, batch)
        return outcome

    def _run_alone(
        self, command: Command[R], handler: registry.Handler[Any], fingerprint: str
    ) -> Outcome[R]:
        actor, reason = command.acting()
        command_id = command.command_id
        for attempt in range(self.max_attempts):
            if command_id is not None:
                found, prior = self.command_log.prior_result(
                    None, command_id, fingerprint, command.command
                )
                if found:
                    return Outcome(cast(R, prior), False)
            # The first attempt decides on cached aggregates as they are, without a query for
            # newer events. What it changes is safe: saving a stale aggregate's event clashes
            # on its version. What it only read is confirmed below: by read guards in the
            # save, or by one query when nothing is saved.
            uow = UnitOfWork(
                self.repository,
                self.meta(actor, reason, command_id),
                optimistic=attempt == 0,
                known_absent=self.known_absent,
            )
            denial: permissions.Denial | None = None
            try:
                if command.as_user is not None:
                    denial = permissions.check(command, uow)
                if denial is None:
                    result: R = handler(command, uow, self.services)
                else:
                    self._journal(command, uow, denial, fingerprint)
            except LedgerError:
                # nothing is saved: confirm all it read (from the cache, or from the database
                # in reads another writer's commit may have fallen between), else the refusal
                # may rest on a view no moment had
                if self._stale([*uow.unverified.items(), *uow.fetched.items()]):
                    continue
                raise
            # Taken unconfirmed and left unchanged: nothing else in the save would catch them
            # stale. Confirmed by a query if nothing is saved, else by read guards in the save.
            unconfirmed = uow.unverified_unchanged()
            writes: list[SideWrite] = list(uow.side_writes)
            if command_id is not None and denial is None:
                writes.append(self.command_log.remember(command_id, fingerprint, result))
            changed = uow.changed()
            if not changed and not writes:
                if self._stale(unconfirmed):
                    continue
                if denial is not None:  # journalled already, under this command id
                    raise denial.error()
                return Outcome(result, False)
            try:
                self.save(*changed, side_writes=writes, **_guarded(uow, unconfirmed))
            except (IntegrityError, OperationalError) as error:
                # A concurrent writer won a version, a claim or the command id (or held the
                # database lock too long), or a cached aggregate was stale. Retrying from
                # fresh state either succeeds or rejects the command with a clear error.
                if not is_contention(error):
                    raise
                if not uow.unverified:
                    back_off(attempt)
            else:
                for aggregate in changed:
                    self.known_absent.found(aggregate.id)
                if denial is not None:
                    raise denial.error()
                for callback in uow.after_commit:
                    callback()
                recorded = bool(changed) or len(writes) > (command_id is not None)
                return Outcome(result, recorded)
        raise Conflict(
            f"{command.command} was not applied: concurrent changes kept conflicting "
            f"after {self.max_attempts} attempts; try again"
        )

    def _run_in_batch(
        self,
        command: Command[R],
        handler: registry.Handler[Any],
        fingerprint: str,
        uow: UnitOfWork,
    ) -> Outcome[R]:
        command_id = command.command_id
        if command_id is not None:
            found, prior = self.command_log.prior_result(
                uow, command_id, fingerprint, command.command
            )
            if found:
                return Outcome(cast(R, prior), False)
        uow.begin_command(self.meta(*command.acting(), command_id))
        if command.as_user is not None:
            denial = permissions.check(command, uow)  # reads only: may reject, changes nothing
            if denial is not None:
                self._journal(command, uow, denial, fingerprint)  # kept: the line is refused
                raise denial.error()
        try:
            result: R = handler(command, uow, self.services)
        except LedgerError:
            if uow.command_changed():  # handlers must reject before their first change
                raise RuntimeError(
                    f"{command.command} changed state before it was rejected"
                ) from None
            raise
        recorded = uow.command_changed()
        if command_id is not None:
            uow.write(self.command_log.remember(command_id, fingerprint, result))
            uow.command_results[command_id] = (fingerprint, result)
        return Outcome(result, recorded)

    def _journal(
        self, command: Command[Any], uow: UnitOfWork, denial: permissions.Denial, fingerprint: str
    ) -> None:
        """Add the denial's AccessDenied entry to the unit of work, unless this command id was
        denied (with these arguments) before: a retry is not journalled twice."""
        entry_id = AccessDenial.id_for(command.command_id, fingerprint)
        if command.command_id is not None and uow.exists(AccessDenial, entry_id):
            return
        uow.add(
            AccessDenial.journal(
                entry_id,
                as_user=denial.as_user,
                command=denial.command,
                targets=denial.targets,
                rule=denial.verdict.rule,
                meta=uow.meta,
            )
        )

    def _stale(self, taken: Iterable[tuple[UUID, int]]) -> bool:
        """Whether any of these cached aggregates, taken unconfirmed at these versions, has
        newer events in the database (then the command must run again on fresh state)."""
        versions = list(taken)
        return bool(versions) and bool(self.side.events_after(versions))

    # -- batches ------------------------------------------------------------------------------

    def open_batch(self) -> UnitOfWork:
        return UnitOfWork(self.repository, self.meta("batch", None, None), batched=True)

    def preload(self, uow: UnitOfWork, aggregate_ids: Iterable[UUID]) -> None:
        """Bring these aggregates up to date in a few queries instead of one or two each: the
        events each lacks (all of them, if it is not cached) in one query per chunk, and the
        keys to decode them in another. Ids that name nothing are left for `load` to reject."""
        cache = self.repository.cache
        wanted = [i for i in dict.fromkeys(aggregate_ids) if not uow.holds(i)]
        for start in range(0, len(wanted), 400):
            chunk = wanted[start : start + 400]
            cached: dict[UUID, LedgerAggregate] = {}
            if cache is not None:
                for aggregate_id in chunk:
                    with suppress(KeyError):
                        cached[aggregate_id] = cast(LedgerAggregate, cache.get(aggregate_id))
            stored = self.side.events_after(
                [(i, cached[i].version if i in cached else 0) for i in chunk]
            )
            by_aggregate: dict[UUID, list[Any]] = {}
            for event in self.decode(stored):
                by_aggregate.setdefault(event.originator_id, []).append(event)
            for aggregate_id in chunk:
                events = by_aggregate.get(aggregate_id, [])
                aggregate = cached.get(aggregate_id)
                if events:
                    aggregate = project(None if aggregate is None else aggregate.clone(), events)
                    if cache is not None:
                        cache.put(aggregate_id, aggregate)
                if aggregate is not None:
                    uow.add_loaded(aggregate.clone())

    def commit(self, uow: UnitOfWork) -> None:
        """Save a batch's events and side rows in one transaction (no retry: on a conflict the
        caller re-runs the commands one by one)."""
        changed = uow.changed()
        try:
            if changed or uow.side_writes:
                self.save(*changed, side_writes=uow.side_writes, **_guarded(uow))
        finally:
            self.services.claims.forget_keys()  # as after a command run alone
        for aggregate in changed:
            self.known_absent.found(aggregate.id)
        for callback in uow.after_commit:
            callback()


def _guarded(uow: UnitOfWork, unconfirmed: Iterable[tuple[UUID, int]] = ()) -> dict[str, Any]:
    """The save's read guards: of what a permission check read, and of the aggregates taken
    unconfirmed and left unchanged (no keyword at all if none, so such a save is what it
    always was)."""
    guards = dict(unconfirmed)
    for aggregate_id, version in uow.read_guards_left():
        guards[aggregate_id] = min(version, guards.get(aggregate_id, version))
    return {"read_guards": list(guards.items())} if guards else {}


def back_off(attempt: int) -> None:
    """Exponential back-off with full jitter, so colliding writers spread out."""
    time.sleep(random.uniform(0, min(0.25, 0.002 * 2**attempt)))
