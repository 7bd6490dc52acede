"""Commands on accounts: create, update, grant and revoke account roles, set the consultancy,
close."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from ledger.commands.base import (
    UNSET,
    Decision,
    Services,
    Unset,
    arg,
    optional_as,
    optional_uuid_of,
    plain,
    unless_unset,
    uuid_of,
    valid_as,
)
from ledger.commands.grants import grant_ends_followed
from ledger.commands.registry import handles
from ledger.commands.separation import (
    approver,
    check_approval,
    check_roles_together,
    check_separation,
)
from ledger.domain import Account, AccountRole, Meta, User
from ledger.errors import Conflict, ValidationError
from ledger.storage.claims import ACCOUNT_NAME
from ledger.unit_of_work import UnitOfWork
from ledger.validation import AccountName, Colour, LogoUrl, Moment, role_name, role_names, shown


def check_colour_pair(primary: str | None, secondary: str | None) -> None:
    if (primary is None) != (secondary is None):
        given, value = ("primary_color", primary) if primary else ("secondary_color", secondary)
        raise ValidationError(
            f"invalid {given} {shown(value)}: primary_color and secondary_color are given together "
            "or not at all"
        )


def check_name_free(services: Services, uow: UnitOfWork, name: str, owner: UUID | None) -> None:
    holder = services.claims.owner(ACCOUNT_NAME, name, uow)
    if holder is not None and holder != owner:
        raise Conflict(f"account name {shown(name)} is already taken by open account {holder}")


@dataclass(frozen=True, kw_only=True)
class CreateAccount(Decision[UUID]):
    command: ClassVar[str] = "create_account"

    name: str = arg(valid_as(AccountName, "account name"))
    primary_color: str | None = arg(optional_as(Colour, "primary_color"), None)
    secondary_color: str | None = arg(optional_as(Colour, "secondary_color"), None)
    logo_url: str | None = arg(optional_as(LogoUrl, "logo_url"), None)
    roles: tuple[str, ...] = arg(plain(lambda value: tuple(role_names(value, "account role"))), ())
    consultancy_account_id: UUID | None = arg(optional_uuid_of("consultancy account"), None)

    def check(self) -> None:
        check_colour_pair(self.primary_color, self.secondary_color)


@handles(CreateAccount)
def create_account(command: CreateAccount, uow: UnitOfWork, services: Services) -> UUID:
    check_name_free(services, uow, command.name, None)
    consultancy = command.consultancy_account_id
    if consultancy is not None:
        uow.load(Account, consultancy, "consultancy account").check_open()
    for role in command.roles:
        services.check_role(uow, AccountRole, role)
    who = f"account {shown(command.name)}"
    check_roles_together(uow, "account", command.roles, who, services.separation_enforced)
    account = Account.create(
        name=command.name,
        primary_color=command.primary_color,
        secondary_color=command.secondary_color,
        logo_url=command.logo_url,
        consultancy_account_id=consultancy,
        meta=uow.meta,
    )
    for role in command.roles:
        account.grant_role(role, uow.meta)
    uow.add(account)
    services.claims.claim(uow, ACCOUNT_NAME, command.name, account.id)
    return account.id


@dataclass(frozen=True, kw_only=True)
class UpdateAccount(Decision[bool]):
    command: ClassVar[str] = "update_account"

    account: UUID = arg(uuid_of("account"))
    name: str | Unset = arg(unless_unset(valid_as(AccountName, "account name")), UNSET)
    primary_color: str | Unset | None = arg(
        unless_unset(optional_as(Colour, "primary_color")), UNSET
    )
    secondary_color: str | Unset | None = arg(
        unless_unset(optional_as(Colour, "secondary_color")), UNSET
    )
    logo_url: str | Unset | None = arg(unless_unset(optional_as(LogoUrl, "logo_url")), UNSET)

    def changes(self) -> dict[str, Any]:
        """The fields given, by name."""
        args = self.fingerprint_args()
        del args["account"]
        args.pop("as_user", None)
        return args


@handles(UpdateAccount)
def update_account(command: UpdateAccount, uow: UnitOfWork, services: Services) -> bool:
    account = uow.load(Account, command.account, "account")
    account.check_open()
    changes = command.changes()
    check_colour_pair(
        changes.get("primary_color", account.primary_color),
        changes.get("secondary_color", account.secondary_color),
    )
    old_name = account.name
    new_name = changes.get("name", old_name)
    if new_name != old_name:
        check_name_free(services, uow, new_name, account.id)
    if not account.update(changes, uow.meta):
        return False
    if new_name != old_name:
        services.claims.release(uow, ACCOUNT_NAME, old_name)
        services.claims.claim(uow, ACCOUNT_NAME, new_name, account.id)
    return True


@dataclass(frozen=True, kw_only=True)
class GrantAccountRole(Decision[bool]):
    """Grant an account role: until revoked, or until `until` (an end fixed in advance)."""

    command: ClassVar[str] = "grant_account_role"
    added_later: ClassVar[frozenset[str]] = frozenset({"until", "exception_approved_by"})

    account: UUID = arg(uuid_of("account"))
    role: str = arg(plain(lambda value: role_name(value, "account role")))
    until: datetime | None = arg(optional_as(Moment, "until"), None)
    exception_approved_by: str | None = arg(approver, None)
    """Who approved the grant as an exception to separation-of-duties rules it breaks."""

    def check(self) -> None:
        check_approval(
            self.exception_approved_by, self.actor, self.reason, self.account, self.as_user
        )


@handles(GrantAccountRole)
def grant_account_role(command: GrantAccountRole, uow: UnitOfWork, services: Services) -> bool:
    account = uow.load(Account, command.account, "account")
    services.check_role(uow, AccountRole, command.role)
    approved_by = command.exception_approved_by
    enforced = services.separation_enforced
    broken = check_separation(uow, account, "account", command.role, approved_by, enforced)
    with grant_ends_followed(uow, account):
        granted = account.grant_role(command.role, uow.meta, command.until)
    if granted and broken and approved_by is not None:
        account.approve_exception(broken, command.role, approved_by, uow.meta)
    return granted


@dataclass(frozen=True, kw_only=True)
class RevokeAccountRole(Decision[bool]):
    command: ClassVar[str] = "revoke_account_role"

    account: UUID = arg(uuid_of("account"))
    role: str = arg(plain(lambda value: role_name(value, "account role")))


@handles(RevokeAccountRole)
def revoke_account_role(command: RevokeAccountRole, uow: UnitOfWork, services: Services) -> bool:
    account = uow.load(Account, command.account, "account")
    services.check_role(uow, AccountRole, command.role)
    with grant_ends_followed(uow, account):
        return account.revoke_role(command.role, uow.meta)


@dataclass(frozen=True, kw_only=True)
class SetConsultancy(Decision[bool]):
    command: ClassVar[str] = "set_consultancy"

    account: UUID = arg(uuid_of("account"))
    consultancy_account_id: UUID | None = arg(optional_uuid_of("consultancy account"))

    def check(self) -> None:
        if self.consultancy_account_id == self.account:
            raise ValidationError(f"account {self.account} cannot be its own consultancy")


@handles(SetConsultancy)
def set_consultancy(command: SetConsultancy, uow: UnitOfWork, services: Services) -> bool:
    account = uow.load(Account, command.account, "account")
    account.check_open()
    consultancy = command.consultancy_account_id
    if consultancy is not None:
        uow.load(Account, consultancy, "consultancy account").check_open()
        _check_no_cycle(uow, command.account, consultancy)
    return account.set_consultancy(consultancy, uow.meta)


def _check_no_cycle(uow: UnitOfWork, account_id: UUID, consultancy: UUID) -> None:
    seen: set[UUID] = set()
    current: UUID | None = consultancy
    while current is not None and current not in seen:
        if current == account_id:
            raise ValidationError(
                f"consultancy account {consultancy} would make a cycle: it is, directly or "
                f"through others, a client of account {account_id}"
            )
        seen.add(current)
        current = uow.load(Account, current, "account").consultancy_account_id


@dataclass(frozen=True, kw_only=True)
class CloseAccount(Decision[bool]):
    command: ClassVar[str] = "close_account"

    account: UUID = arg(uuid_of("account"))


@handles(CloseAccount)
def close_account(command: CloseAccount, uow: UnitOfWork, services: Services) -> bool:
    account = uow.load(Account, command.account, "account")
    if account.closed:
        return False
    meta = uow.meta
    leaving = Meta(meta.actor, "account closed", meta.command_id, meta.timestamp)
    for user_id in sorted(account.members):
        uow.load(User, user_id, "user").deactivate(leaving)
    with grant_ends_followed(uow, account):
        account.close(uow.meta)
    services.claims.release(uow, ACCOUNT_NAME, account.name)
    return True
