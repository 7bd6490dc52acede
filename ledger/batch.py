"""A batch: many commands validated one after another against the state the earlier ones
left, saved in one transaction. The fast path of `ledger apply`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING
from uuid import UUID

from ledger.unit_of_work import UnitOfWork

if TYPE_CHECKING:
    from ledger.application import Ledger


class Batch:
    def __init__(self, ledger: Ledger, uow: UnitOfWork) -> None:
        self.ledger = ledger
        self.uow = uow

    def prefetch_command_ids(self, command_ids: list[str]) -> None:
        """Look up, in a few queries, which of these command ids were applied before, so the
        batch's commands need no look-up each."""
        self.ledger._prefetch_commands(self.uow, command_ids)

    def prefetch_claims(
        self, emails: list[str], usernames: list[str], account_names: list[str]
    ) -> None:
        """Look up who holds these emails, usernames and open account names, in a few
        queries, so the batch's commands and references need no look-up each."""
        self.ledger._prefetch_claims(
            self.uow,
            [
                *(("email", e) for e in emails),
                *(("username", u) for u in usernames),
                *(("account-name", a) for a in account_names),
            ],
        )

    def preload(self, aggregate_ids: Iterable[UUID]) -> None:
        """Load these aggregates (users, accounts) in a few queries, so the batch's commands
        need no look-up each. Ids that name nothing are ignored here."""
        self.ledger._preload(self.uow, aggregate_ids)

    def claim_owners(self) -> list[UUID]:
        """Who holds the values looked up so far (see `prefetch_claims`)."""
        return [owner for owner in self.uow.claims.values() if owner is not None]

    def commit(self) -> None:
        """Save everything the batch's commands recorded, atomically. Raises eventsourcing's
        IntegrityError or OperationalError if a concurrent writer got in the way; then nothing
        of the batch was saved."""
        self.ledger._commit_batch(self.uow)
