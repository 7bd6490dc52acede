"""The security journal: one aggregate per refused command (`AccessDenied`), so denials never
contend with each other or with the domain, and each is chained in the log like any event.

A denied command with a `command_id` gets the id `AccessDenial.id_for(command_id, fingerprint)`:
retried, it finds its entry there and is not journalled twice."""

from __future__ import annotations

from uuid import UUID, uuid4, uuid5

from ledger.domain.base import LedgerAggregate, Meta

_NAMESPACE = UUID("5c0b7e52-2f4d-4f0a-b7c9-61d0a2e3f8b4")


class AccessDenial(LedgerAggregate):
    def __init__(self) -> None:
        self.as_user = UUID(int=0)
        self.command = ""
        self.targets: tuple[str, ...] = ()
        self.rule = ""

    class AccessDenied(LedgerAggregate.Created):
        """`as_user` may not run `command` (on `targets`: ids of users and accounts, or the
        names of roles and rules) under `rule` (a rule of `ledger.access_policy`)."""

        as_user: UUID
        command: str
        targets: tuple[str, ...]
        rule: str

        def apply(self, denial: AccessDenial) -> None:  # type: ignore[override]
            denial.as_user = self.as_user
            denial.command = self.command
            denial.targets = tuple(self.targets)
            denial.rule = self.rule

    @staticmethod
    def id_for(command_id: str | None, fingerprint: str) -> UUID:
        """A denied command's entry: fixed by its command id and arguments, else new."""
        if command_id is None:
            return uuid4()
        return uuid5(_NAMESPACE, f"{command_id}\n{fingerprint}")

    @classmethod
    def journal(
        cls,
        entry_id: UUID,
        *,
        as_user: UUID,
        command: str,
        targets: tuple[str, ...],
        rule: str,
        meta: Meta,
    ) -> AccessDenial:
        return cls._create(
            cls.AccessDenied,
            id=entry_id,
            as_user=as_user,
            command=command,
            targets=targets,
            rule=rule,
            **meta.fields(),
        )
