"""A batch: many commands validated one after another against the state the earlier ones
left, saved in one transaction. The fast path of `ledger apply`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar
from uuid import UUID

from ledger.commands.base import Command
from ledger.runner import Outcome, Runner
from ledger.storage.claims import ACCOUNT_NAME, EMAIL, USERNAME, ClaimReferences, Claims
from ledger.unit_of_work import UnitOfWork

R = TypeVar("R")


class Batch:
    def __init__(self, runner: Runner, claims: Claims) -> None:
        self.runner = runner
        self.claims = claims
        self.uow: UnitOfWork = runner.open_batch()
        self.references = ClaimReferences(claims, self.uow)
        """Users and accounts as the batch's commands so far leave them."""

    def run(self, command: Command[R]) -> Outcome[R]:
        """Run a command in the batch: it sees what the earlier ones did, and a rejected one
        changes nothing."""
        return self.runner.run(command, self.uow)

    def prefetch_command_ids(self, command_ids: list[str]) -> None:
        """Look up, in a few queries, which of these command ids were applied before, so the
        batch's commands need no look-up each."""
        self.runner.command_log.prefetch(self.uow, command_ids)

    def prefetch_claims(
        self, emails: list[str], usernames: list[str], account_names: list[str]
    ) -> None:
        """Look up who holds these emails, usernames and open account names, in a few
        queries, so the batch's commands and references need no look-up each."""
        self.claims.prefetch(
            self.uow,
            [
                *((EMAIL, e) for e in emails),
                *((USERNAME, u) for u in usernames),
                *((ACCOUNT_NAME, a) for a in account_names),
            ],
        )

    def preload(self, aggregate_ids: Iterable[UUID]) -> None:
        """Load these aggregates (users, accounts) in a few queries, so the batch's commands
        need no look-up each. Ids that name nothing are ignored here."""
        self.runner.preload(self.uow, aggregate_ids)

    def claim_owners(self) -> list[UUID]:
        """Who holds the values looked up so far (see `prefetch_claims`)."""
        return [owner for owner in self.uow.claims.values() if owner is not None]

    def commit(self) -> None:
        """Save everything the batch's commands recorded, atomically. Raises eventsourcing's
        IntegrityError or OperationalError if a concurrent writer got in the way; then nothing
        of the batch was saved."""
        self.runner.commit(self.uow)
