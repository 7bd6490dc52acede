"""Separation of duties: the rules that no one user (or account) may hold both of two roles.

All rules live in one aggregate, the policy, so that a rule's name is unique by the aggregate
itself and a grant reads every rule in one load. A grant that would break a rule is refused
unless an exception is approved; the approval is an event of the holder (see `User`, `Account`).
"""

from __future__ import annotations

from typing import Any, Final, Literal
from uuid import UUID, uuid5

from ledger.domain.base import LedgerAggregate, Meta
from ledger.errors import Conflict, NotFound
from ledger.validation import shown

Scope = Literal["user", "account"]
SCOPES: Final = ("user", "account")
POLICY_ID: Final = uuid5(UUID("6f0c2b7e-8a4c-4f53-9a55-2f1f0b1e7d10"), "separation-of-duties")


class SeparationPolicy(LedgerAggregate):
    def __init__(self) -> None:
        self.rules: dict[str, tuple[Scope, tuple[str, str]]] = {}

    class PolicyStarted(LedgerAggregate.Created):
        """The first rule is about to be defined."""

        def apply(self, policy: SeparationPolicy) -> None:  # type: ignore[override]
            policy.rules = {}

    class SodRuleDefined(LedgerAggregate.Event):
        name: str
        roles: list[str]
        scope: str

        def apply(self, policy: SeparationPolicy) -> None:  # type: ignore[override]
            first, second = self.roles
            policy.rules[self.name] = (self.scope, (first, second))  # type: ignore[assignment]

    class SodRuleRemoved(LedgerAggregate.Event):
        name: str

        def apply(self, policy: SeparationPolicy) -> None:  # type: ignore[override]
            policy.rules.pop(self.name, None)

    @classmethod
    def start(cls, meta: Meta) -> SeparationPolicy:
        policy: SeparationPolicy = cls._create(cls.PolicyStarted, id=POLICY_ID, **meta.fields())
        return policy

    def define(self, name: str, scope: Scope, roles: tuple[str, str], meta: Meta) -> bool:
        found = self.rules.get(name)
        if found is not None:
            if found == (scope, roles) or found == (scope, roles[::-1]):
                return False
            raise Conflict(f"separation-of-duties rule {shown(name)} is already defined")
        self.record(self.SodRuleDefined, meta, name=name, roles=list(roles), scope=scope)
        return True

    def remove(self, name: str, meta: Meta) -> bool:
        if name not in self.rules:
            raise NotFound(f"separation-of-duties rule {shown(name)} is not defined")
        self.record(self.SodRuleRemoved, meta, name=name)
        return True

    def broken_by(self, scope: Scope, role: str, held: set[str]) -> list[str]:
        """The rules (by name) that granting `role` to a holder of `held` would break."""
        return sorted(
            name
            for name, (rule_scope, pair) in self.rules.items()
            if rule_scope == scope and role in pair and (set(pair) - {role}) <= held
        )


def describe_rule(policy: Any, name: str) -> str:
    scope, (first, second) = policy.rules[name]
    return f"rule {shown(name)} ({scope}s may not hold both {first!r} and {second!r})"
