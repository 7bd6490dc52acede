"""The two role catalogues: user roles (`Role`) and account roles (`AccountRole`).

A role's id is derived from its name, so defining a name twice is a version conflict in the
event store itself: uniqueness holds across processes without a separate check.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid5

from ledger.domain.base import LedgerAggregate, Meta

_NAMESPACE = UUID("6f0c2b7e-8a4c-4f53-9a55-2f1f0b1e7d10")


class _Defined(LedgerAggregate.Created):
    name: str
    description: str | None

    def apply(self, aggregate: Any) -> None:
        aggregate.name = self.name
        aggregate.description = self.description


class _Described(LedgerAggregate.Event):
    """The description of role `name` is now `description` (None: it has none)."""

    name: str
    description: str | None

    def apply(self, aggregate: Any) -> None:
        aggregate.description = self.description


class _CatalogueEntry(LedgerAggregate):
    catalogue = ""
    defined_event = ""  # the name of the catalogue's own definition event
    described_event = ""  # and of its description changes

    def __init__(self) -> None:
        self.name = ""
        self.description: str | None = None

    @classmethod
    def id_for(cls, name: str) -> UUID:
        return uuid5(_NAMESPACE, f"{cls.catalogue}:{name}")

    @classmethod
    def define(cls, name: str, description: str | None, meta: Meta) -> Any:
        return cls._create(
            getattr(cls, cls.defined_event),  # the class as finalised by the metaclass
            id=cls.id_for(name),
            name=name,
            description=description,
            **meta.fields(),
        )

    def describe_as(self, description: str | None, meta: Meta) -> bool:
        """Give the role a new description (False if it has that one already)."""
        if description == self.description:
            return False
        self.record(
            getattr(self, self.described_event), meta, name=self.name, description=description
        )
        return True


class Role(_CatalogueEntry):
    """A user role, such as `admin` or `account-admin`."""

    catalogue = "role"

    class RoleDefined(_Defined):
        pass

    class RoleDescribed(_Described):
        pass

    defined_event = "RoleDefined"
    described_event = "RoleDescribed"


class AccountRole(_CatalogueEntry):
    """An account role, such as `Consultancy`."""

    catalogue = "account-role"

    class AccountRoleDefined(_Defined):
        pass

    class AccountRoleDescribed(_Described):
        pass

    defined_event = "AccountRoleDefined"
    described_event = "AccountRoleDescribed"
