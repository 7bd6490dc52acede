"""Commands on the role catalogues: define a user role or an account role, change its
description."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ledger.commands.base import Decision, Services, arg, optional_as, plain
from ledger.commands.registry import handles
from ledger.domain import AccountRole, Role
from ledger.errors import Conflict, NotFound
from ledger.unit_of_work import UnitOfWork
from ledger.validation import Description, role_name, shown


@dataclass(frozen=True, kw_only=True)
class DefineRole(Decision[bool]):
    command: ClassVar[str] = "define_role"
    catalogue: ClassVar[type[Role | AccountRole]] = Role
    what: ClassVar[str] = "role"

    name: str = arg(plain(lambda value: role_name(value, "role")))
    description: str | None = arg(optional_as(Description, "description"), None)


@dataclass(frozen=True, kw_only=True)
class DefineAccountRole(DefineRole):
    command: ClassVar[str] = "define_account_role"
    catalogue: ClassVar[type[Role | AccountRole]] = AccountRole
    what: ClassVar[str] = "account role"

    name: str = arg(plain(lambda value: role_name(value, "account role")))


def define(command: DefineRole, uow: UnitOfWork, services: Services) -> bool:
    cls = command.catalogue
    if uow.exists(cls, cls.id_for(command.name)):
        raise Conflict(f"{command.what} {shown(command.name)} is already defined")
    uow.add(cls.define(command.name, command.description, uow.meta))
    return True


handles(DefineRole)(define)
handles(DefineAccountRole)(define)


@dataclass(frozen=True, kw_only=True)
class DescribeRole(Decision[bool]):
    """Give a defined user role a new description (None: none); False if it has it already."""

    command: ClassVar[str] = "describe_role"
    catalogue: ClassVar[type[Role | AccountRole]] = Role
    what: ClassVar[str] = "role"

    name: str = arg(plain(lambda value: role_name(value, "role")))
    description: str | None = arg(optional_as(Description, "description"))


@dataclass(frozen=True, kw_only=True)
class DescribeAccountRole(DescribeRole):
    command: ClassVar[str] = "describe_account_role"
    catalogue: ClassVar[type[Role | AccountRole]] = AccountRole
    what: ClassVar[str] = "account role"

    name: str = arg(plain(lambda value: role_name(value, "account role")))


def describe(command: DescribeRole, uow: UnitOfWork, services: Services) -> bool:
    cls = command.catalogue
    try:
        role = uow.load(cls, cls.id_for(command.name), command.what)
    except NotFound:
        raise NotFound(f"{command.what} {shown(command.name)} is not defined") from None
    return bool(role.describe_as(command.description, uow.meta))


handles(DescribeRole)(describe)
handles(DescribeAccountRole)(describe)
