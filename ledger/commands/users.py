"""Commands on users: create, update, grant and revoke roles, deactivate and reactivate, record
logins and activity, set a password, erase."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Final
from uuid import UUID

from ledger.commands.base import (
    UNSET,
    Command,
    Decision,
    Secret,
    Services,
    arg,
    optional_as,
    plain,
    user_reference,
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
from ledger.domain import DEFAULT_TIMEZONE, Account, Role, User
from ledger.domain.users import FailedLoginReason
from ledger.errors import Conflict, ValidationError
from ledger.storage import side_tables as side
from ledger.storage.claims import EMAIL, USERNAME
from ledger.storage.credentials import hash_password, put_key
from ledger.unit_of_work import UnitOfWork
from ledger.validation import (
    Email,
    IpAddress,
    Moment,
    Password,
    Reason,
    Timezone,
    Username,
    optional,
    role_name,
    role_names,
    shown,
    valid,
)

FAILED_LOGIN_ACTOR: Final = "unauthenticated"


def _password_hash(value: Any) -> Secret:
    """A password's argon2 hash, made once when the command is parsed (not on each retry)."""
    password = optional(Password, value, "password")
    return Secret(None if password is None else hash_password(password))


def _new_password_hash(value: Any) -> Secret:
    return Secret(hash_password(valid(Password, value, "password")))


def _unset_as_none(annotation: Any, what: str) -> Any:
    return plain(lambda value: None if value is UNSET else valid(annotation, value, what))


def _check_free(uow: UnitOfWork, services: Services, value: str, kind: str) -> None:
    if services.claims.owner(kind, value, uow) is not None:
        raise Conflict(f"{kind} {shown(value)} is already taken")


@dataclass(frozen=True, kw_only=True)
class CreateUser(Decision[UUID]):
    command: ClassVar[str] = "create_user"

    email: str = arg(valid_as(Email, "email"))
    account_id: UUID = arg(uuid_of("account"))
    username: str | None = arg(optional_as(Username, "username"), None)
    timezone: str = arg(valid_as(Timezone, "timezone"), DEFAULT_TIMEZONE)
    roles: tuple[str, ...] = arg(plain(lambda value: tuple(role_names(value, "role"))), ())
    password: Secret = arg(plain(_password_hash), None)
    """The password's argon2 hash (`value` None without a password), never its text."""


@handles(CreateUser)
def create_user(command: CreateUser, uow: UnitOfWork, services: Services) -> UUID:
    claims = services.claims
    account = uow.load(Account, command.account_id, "account")
    account.check_open()
    _check_free(uow, services, command.email, EMAIL)
    chosen = command.username or _default_username(uow, services, command.email)
    _check_free(uow, services, chosen, USERNAME)
    for role in command.roles:
        services.check_role(uow, Role, role)
    check_roles_together(
        uow, "user", command.roles, f"user {shown(command.email)}", services.separation_enforced
    )
    new = User.create(
        email=command.email,
        username=chosen,
        account_id=account.id,
        timezone=command.timezone,
        meta=uow.meta,
    )
    key_id, key = services.keyring.new_key()
    services.keyring.stage(new.id, key_id, key)
    uow.write(put_key(key_id, new.id, key))
    uow.add(new)
    account.add_member(new.id, uow.meta)
    for role in command.roles:
        new.grant_role(role, uow.meta)
    if command.password.value is not None:
        new.change_password(uow.meta)
        changed_at = uow.meta.timestamp.isoformat()
        uow.write(side.put_credential(new.id, command.password.value, changed_at))
    claims.claim(uow, EMAIL, command.email, new.id)
    claims.claim(uow, USERNAME, chosen, new.id)
    return new.id


def _default_username(uow: UnitOfWork, services: Services, email: str) -> str:
    local_part = email.rsplit("@", 1)[0]
    return email if services.claims.owner(USERNAME, local_part, uow) is not None else local_part


@dataclass(frozen=True, kw_only=True)
class UpdateUser(Decision[bool]):
    command: ClassVar[str] = "update_user"

    user: UUID = arg(user_reference())
    # None: left as it is (none of these can be cleared)
    email: str | None = arg(_unset_as_none(Email, "email"), UNSET)
    username: str | None = arg(_unset_as_none(Username, "username"), UNSET)
    timezone: str | None = arg(_unset_as_none(Timezone, "timezone"), UNSET)


@handles(UpdateUser)
def update_user(command: UpdateUser, uow: UnitOfWork, services: Services) -> bool:
    claims = services.claims
    found = uow.load(User, command.user, "user")
    old_email, old_username = found.email, found.username
    new_email, new_username = command.email, command.username
    email_moves = new_email is not None and new_email.casefold() != old_email.casefold()
    username_moves = new_username is not None and new_username != old_username
    if email_moves and claims.owner(EMAIL, new_email or "", uow) is not None:
        raise Conflict(f"email {shown(new_email)} is already taken")
    if username_moves and claims.owner(USERNAME, new_username or "", uow) is not None:
        raise Conflict(f"username {shown(new_username)} is already taken")
    if not found.update(
        uow.meta, email=new_email, username=new_username, timezone=command.timezone
    ):
        return False
    if email_moves:
        claims.release(uow, EMAIL, old_email)
        claims.claim(uow, EMAIL, found.email, found.id)
    if username_moves:
        claims.release(uow, USERNAME, old_username)
        claims.claim(uow, USERNAME, found.username, found.id)
    return True


@dataclass(frozen=True, kw_only=True)
class MoveUser(Decision[bool]):
    """Move a user to another (open) account; False if the user is in it already."""

    command: ClassVar[str] = "move_user"

    user: UUID = arg(user_reference())
    account_id: UUID = arg(uuid_of("account"))


@handles(MoveUser)
def move_user(command: MoveUser, uow: UnitOfWork, services: Services) -> bool:
    found = uow.load(User, command.user, "user")
    target = uow.load(Account, command.account_id, "account")
    if found.account_id == target.id:
        return False
    target.check_open()
    old = uow.load(Account, found.account_id, "account")
    if not found.move(target.id, uow.meta):
        return False
    old.remove_member(found.id, uow.meta)
    target.add_member(found.id, uow.meta)
    return True


@dataclass(frozen=True, kw_only=True)
class GrantRole(Decision[bool]):
    """Grant a user role: until revoked, or until `until` (an end fixed in advance)."""

    command: ClassVar[str] = "grant_role"
    added_later: ClassVar[frozenset[str]] = frozenset({"until", "exception_approved_by"})

    user: UUID = arg(user_reference())
    role: str = arg(plain(role_name))
    until: datetime | None = arg(optional_as(Moment, "until"), None)
    exception_approved_by: str | None = arg(approver, None)
    """Who approved the grant as an exception to separation-of-duties rules it breaks."""

    def check(self) -> None:
        check_approval(self.exception_approved_by, self.actor, self.reason, self.user, self.as_user)


@handles(GrantRole)
def grant_role(command: GrantRole, uow: UnitOfWork, services: Services) -> bool:
    found = uow.load(User, command.user, "user")
    services.check_role(uow, Role, command.role)
    broken = check_separation(
        uow,
        found,
        "user",
        command.role,
        command.exception_approved_by,
        services.separation_enforced,
    )
    with grant_ends_followed(uow, found):
        granted = found.grant_role(command.role, uow.meta, command.until)
    if granted and broken and command.exception_approved_by is not None:
        found.approve_exception(broken, command.role, command.exception_approved_by, uow.meta)
    return granted


@dataclass(frozen=True, kw_only=True)
class RevokeRole(Decision[bool]):
    command: ClassVar[str] = "revoke_role"

    user: UUID = arg(user_reference())
    role: str = arg(plain(role_name))


@handles(RevokeRole)
def revoke_role(command: RevokeRole, uow: UnitOfWork, services: Services) -> bool:
    found = uow.load(User, command.user, "user")
    services.check_role(uow, Role, command.role)
    with grant_ends_followed(uow, found):
        return found.revoke_role(command.role, uow.meta)


@dataclass(frozen=True, kw_only=True)
class DeactivateUser(Decision[bool]):
    command: ClassVar[str] = "deactivate_user"

    user: UUID = arg(user_reference())


@handles(DeactivateUser)
def deactivate_user(command: DeactivateUser, uow: UnitOfWork, services: Services) -> bool:
    return uow.load(User, command.user, "user").deactivate(uow.meta)


@dataclass(frozen=True, kw_only=True)
class ReactivateUser(Decision[bool]):
    command: ClassVar[str] = "reactivate_user"

    user: UUID = arg(user_reference())


@handles(ReactivateUser)
def reactivate_user(command: ReactivateUser, uow: UnitOfWork, services: Services) -> bool:
    found = uow.load(User, command.user, "user")
    if found.active:
        return False
    uow.load(Account, found.account_id, "account").check_open()
    return found.reactivate(uow.meta)


@dataclass(frozen=True, kw_only=True)
class RecordLogin(Command[bool]):
    """A login; its actor is the user itself."""

    command: ClassVar[str] = "record_login"

    user: UUID = arg(user_reference())
    at: datetime | None = arg(optional_as(Moment, "at"), None)
    ip: str | None = arg(optional_as(IpAddress, "ip"), None)

    def acting(self) -> tuple[str, str | None]:
        return str(self.user), None


@handles(RecordLogin)
def record_login(command: RecordLogin, uow: UnitOfWork, services: Services) -> bool:
    found = uow.load(User, command.user, "user")
    found.record_login(command.at or uow.meta.timestamp, command.ip, uow.meta)
    return True


@dataclass(frozen=True, kw_only=True)
class RecordFailedLogin(Command[bool]):
    """A failed attempt to log in as `user`, a security event: `reason_kind` says why. The
    actor is `unauthenticated`, as the attempt proves no one's identity; the client address
    goes in `ip`, sealed as personal data, never in the actor."""

    command: ClassVar[str] = "record_failed_login"

    user: UUID = arg(user_reference())
    at: datetime | None = arg(optional_as(Moment, "at"), None)
    ip: str | None = arg(optional_as(IpAddress, "ip"), None)
    reason_kind: FailedLoginReason = arg(valid_as(FailedLoginReason, "reason_kind"))

    def acting(self) -> tuple[str, str | None]:
        return FAILED_LOGIN_ACTOR, None


@handles(RecordFailedLogin)
def record_failed_login(command: RecordFailedLogin, uow: UnitOfWork, services: Services) -> bool:
    found = uow.load(User, command.user, "user")
    moment = command.at or uow.meta.timestamp
    found.record_failed_login(moment, command.ip, command.reason_kind, uow.meta)
    return True


@dataclass(frozen=True, kw_only=True)
class RecordLastSeen(Command[bool]):
    """Activity of the user, recorded at most once per resolution; its actor is the user."""

    command: ClassVar[str] = "record_last_seen"

    user: UUID = arg(user_reference())
    at: datetime | None = arg(optional_as(Moment, "at"), None)

    def acting(self) -> tuple[str, str | None]:
        return str(self.user), None


@handles(RecordLastSeen)
def record_last_seen(command: RecordLastSeen, uow: UnitOfWork, services: Services) -> bool:
    found = uow.load(User, command.user, "user")
    moment = command.at or uow.meta.timestamp
    return found.record_last_seen(moment, services.last_seen_resolution(), uow.meta)


@dataclass(frozen=True, kw_only=True)
class SetPassword(Decision[bool]):
    command: ClassVar[str] = "set_password"

    user: UUID = arg(user_reference())
    password: Secret = arg(plain(_new_password_hash))
    """The password's argon2 hash, never its text."""


@handles(SetPassword)
def set_password(command: SetPassword, uow: UnitOfWork, services: Services) -> bool:
    found = uow.load(User, command.user, "user")
    found.change_password(uow.meta)
    changed_at = uow.meta.timestamp.isoformat()
    uow.write(side.put_credential(found.id, command.password.value, changed_at))
    return True


def _required_reason(value: Any) -> str:
    if value is None or not str(value).strip():
        raise ValidationError(f"invalid reason {shown(value)}: erasing a user needs a reason")
    return str(valid(Reason, value, "reason"))


@dataclass(frozen=True, kw_only=True)
class EraseUser(Decision[bool]):
    """Delete the user's key, claims and credential, record UserErased, and wipe what the
    deleted rows held from the disk before returning. Erasing an erased user records nothing
    and returns False, but still finishes a wipe that was cut short."""

    command: ClassVar[str] = "erase_user"

    user: UUID = arg(user_reference())
    reason: str | None = arg(plain(_required_reason))


def _finish_wipe(command: EraseUser, services: Services, batch: UnitOfWork | None) -> None:
    if batch is None:  # a batch wipes once, after it is saved (see `erase_user`)
        services.wipe(command.user)


@handles(EraseUser, after_run=_finish_wipe)
def erase_user(command: EraseUser, uow: UnitOfWork, services: Services) -> bool:
    found = uow.load(User, command.user, "user")
    if not found.erase(uow.meta):
        return False
    uow.write(
        side.release_all(found.id),
        side.delete_user_keys(found.id),
        side.delete_credential(found.id),
    )
    user_id = found.id
    uow.after_commit.append(lambda: services.keyring.forget(user_id))
    uow.after_commit.append(services.claims.forget_keys)
    if uow.batched and services.wipe not in uow.after_commit:
        uow.after_commit.append(services.wipe)  # once, after the batch is saved
    return True
