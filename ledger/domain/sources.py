"""An external system the ledger mirrors (a FlexMeasures database): the entries of its own
audit log that the ledger could not interpret, kept with their text rather than dropped."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID, uuid5

from ledger.domain.base import LedgerAggregate, Meta

_NAMESPACE = UUID("0d6f3c1e-5b7a-4c2e-9f10-8e3a2b4c6d71")


class ExternalSource(LedgerAggregate):
    def __init__(self) -> None:
        self.name = ""
        self.recorded_entries: set[int] = set()

    class SourceRegistered(LedgerAggregate.Created):
        name: str

        def apply(self, source: ExternalSource) -> None:  # type: ignore[override]
            source.name = self.name
            source.recorded_entries = set()

    class UnrecognisedEntryRecorded(LedgerAggregate.Event):
        """An entry of the source's audit log, kept as it was written there: `at` is the
        entry's own time, `entry_id` its id in that log, and the affected user and account
        are the ledger's ids of those the source named (None if it named none). The text can
        hold personal data ("Password reset for user ann"): with an affected user, it is sealed
        with that user's key, so erasing the user erases it."""

        personal_fields = ("text",)
        personal_owner = "affected_user_id"

        entry_id: int
        text: str
        at: datetime
        affected_user_id: UUID | None
        affected_account_id: UUID | None

        def apply(self, source: ExternalSource) -> None:  # type: ignore[override]
            source.recorded_entries.add(self.entry_id)

    @staticmethod
    def id_for(name: str) -> UUID:
        return uuid5(_NAMESPACE, name)

    @classmethod
    def register(cls, name: str, meta: Meta) -> ExternalSource:
        return cls._create(cls.SourceRegistered, id=cls.id_for(name), name=name, **meta.fields())

    def record_unrecognised(
        self,
        meta: Meta,
        *,
        entry_id: int,
        text: str,
        at: datetime,
        affected_user_id: UUID | None,
        affected_account_id: UUID | None,
    ) -> None:
        self.record(
            self.UnrecognisedEntryRecorded,
            meta,
            entry_id=entry_id,
            text=text,
            at=at,
            affected_user_id=affected_user_id,
            affected_account_id=affected_account_id,
        )
