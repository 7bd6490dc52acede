"""What every command is: frozen, typed data that parses and checks its own input.

A command type declares its fields with `arg(parser)`, in the order they are checked; the
tail every command shares (`actor`, `reason`, `command_id`) is checked last. `parse` builds a
command from raw input (a Python call, an `apply` line), then `check` applies its cross-field
rules. The fingerprint of a command id is taken over the parsed fields, secrets left out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, ClassVar, Final, Generic, Protocol, Self, TypeVar
from uuid import UUID

from ledger.domain import AccountRole, Role
from ledger.errors import NotFound, ValidationError
from ledger.storage.claims import Claims
from ledger.storage.personal_data import Keyring
from ledger.unit_of_work import UnitOfWork
from ledger.validation import Actor, CommandId, Reason, as_uuid, shown, validator

R = TypeVar("R")
T = TypeVar("T")


class Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = Unset()
"""Default of `update_*` keyword arguments: leave that field as it is."""


@dataclass(frozen=True)
class Secret:
    """A command argument that never enters the command's fingerprint: a command id repeated
    with only its secrets changed returns the first result."""

    value: Any = field(repr=False)


class Identified(Protocol):
    """A model that names a user or account by its `id` (as the read side returns)."""

    @property
    def id(self) -> UUID | str: ...


class Named(Protocol):
    """A model that names a role by its `name` (as `list_roles()` returns)."""

    @property
    def name(self) -> str: ...


UserRef = UUID | str | Identified
"""A user: by id (a UUID, its text, a model) or by email."""
AccountRef = UUID | str | Identified
"""An account: by id (a UUID, its text, a model)."""
RoleRef = str | Named
Instant = datetime | str
"""An aware datetime, or its ISO 8601 text."""


class References(Protocol):
    """The look-ups a command needs to parse its references (the Ledger provides them)."""

    def resolve_user(self, user: object, what: str = "user") -> UUID: ...

    def user_id_for_email(self, email: str) -> UUID | None: ...

    def resolve_account(self, account: object, what: str = "account") -> UUID: ...


Parser = Callable[[Any, References], Any]


def arg(parse: Parser, default: Any = MISSING) -> Any:
    """A command field, parsed by `parse(raw value, references)`; without a default, required."""
    return field(default=default, metadata={"parse": parse})


def plain(parse: Callable[[Any], T]) -> Callable[[Any, References], T]:
    """A parser that needs no look-ups."""
    return lambda value, _: parse(value)


def unless_unset(parse: Parser) -> Parser:
    """A parser for update fields: UNSET stays UNSET (the field is left as it is)."""
    return lambda value, refs: value if value is UNSET else parse(value, refs)


def user_reference(what: str = "user") -> Parser:
    """A user by id or email (see `Ledger.resolve_user`)."""
    return lambda value, refs: refs.resolve_user(value, what)


def uuid_of(what: str) -> Parser:
    return plain(lambda value: as_uuid(value, what))


def optional_uuid_of(what: str) -> Parser:
    return plain(lambda value: None if value is None else as_uuid(value, what))


def valid_as(annotation: Any, what: str) -> Parser:
    validate = validator(annotation, what)
    return lambda value, _: validate(value)


def optional_as(annotation: Any, what: str) -> Parser:
    validate = validator(annotation, what)
    return lambda value, _: None if value is None else validate(value)


_TAIL: Final = ("actor", "reason", "as_user", "command_id")
_UNFINGERPRINTED: Final = ("actor", "reason", "command_id")


def _acting_user(value: Any, refs: References) -> UUID | None:
    """The user a command acts as: by id or email (an email no user holds is NotFound)."""
    if value is None:
        return None
    try:
        return refs.resolve_user(value, "as_user")
    except ValidationError as error:  # an email's own complaint: say whose email it was
        if "as_user" in str(error):
            raise
        raise ValidationError(f"invalid as_user: {error}") from None


@dataclass(frozen=True)
class _Field:
    name: str
    parse: Parser
    default: Any


@dataclass(frozen=True, kw_only=True)
class Command(Generic[R]):
    """A command; `R` is what it returns. `command` is its one name everywhere: the `Ledger`
    method, the `apply` line's `command`, the fingerprint."""

    command: ClassVar[str]
    added_later: ClassVar[frozenset[str]] = frozenset()
    """Arguments added after command ids were first recorded: left out of the fingerprint
    while None, so that an id recorded before keeps its fingerprint."""
    command_id: str | None = arg(optional_as(CommandId, "command_id"), None)
    as_user: UUID | None = arg(_acting_user, None)
    """Whose permission the command needs (see `ledger.commands.permissions`); None: the
    caller is trusted (an admin's script), as without it."""

    @classmethod
    def parse(cls, refs: References, /, **raw: Any) -> Self:
        """The command these raw arguments ask for, or ValidationError naming the bad one."""
        parsed = {}
        for spec in _fields_of(cls):
            value = raw.get(spec.name, spec.default)
            if value is MISSING:
                raise ValidationError(f"{cls.command}: missing a required argument: {spec.name!r}")
            parsed[spec.name] = spec.parse(value, refs)
        command = cls(**parsed)
        command.check()
        return command

    @classmethod
    def parameters(cls) -> Mapping[str, bool]:
        """Each argument name, and whether it is required."""
        found = _PARAMETERS.get(cls)
        if found is None:
            found = _PARAMETERS[cls] = MappingProxyType(
                {spec.name: spec.default is MISSING for spec in _fields_of(cls)}
            )
        return found

    @classmethod
    def check_arguments(cls, raw: Mapping[str, Any]) -> None:
        """Refuse unknown or missing argument names, before any value is parsed."""
        parameters = cls.parameters()
        for name in raw:
            if name not in parameters:
                raise ValidationError(f"{cls.command}: got an unexpected keyword argument {name!r}")
        for name, required in parameters.items():
            if required and name not in raw:
                raise ValidationError(f"{cls.command}: missing a required argument: {name!r}")

    def check(self) -> None:
        """Cross-field rules; the fields are each valid already."""

    def acting(self) -> tuple[str, str | None]:
        """The actor and reason its events record."""
        raise NotImplementedError

    def fingerprint_args(self) -> dict[str, Any]:
        """The arguments its command id is fingerprinted over: every field but the tail, the
        ones left UNSET, the secrets, and the ones added later while None."""
        return {
            spec.name: value
            for spec in _fields_of(type(self))
            if spec.name not in _UNFINGERPRINTED
            and (value := getattr(self, spec.name)) is not UNSET
            and not isinstance(value, Secret)
            and not (value is None and (spec.name in self.added_later or spec.name == "as_user"))
        }


_valid_reason = validator(Reason, "reason")


def _reason(value: Any, refs: References) -> str | None:
    return None if value is None else _valid_reason(value) or None


@dataclass(frozen=True, kw_only=True)
class Decision(Command[R]):
    """A command someone (`actor`) decides, perhaps saying why (`reason`)."""

    actor: str = arg(valid_as(Actor, "actor"))
    reason: str | None = arg(_reason, None)

    def acting(self) -> tuple[str, str | None]:
        return self.actor, self.reason


_FIELDS: dict[type[Any], tuple[_Field, ...]] = {}
_PARAMETERS: dict[type[Any], Mapping[str, bool]] = {}


def _fields_of(cls: type[Command[Any]]) -> tuple[_Field, ...]:
    """The fields of a command type in the order they are parsed, the shared tail last."""
    found = _FIELDS.get(cls)
    if found is None:
        declared = [_Field(f.name, f.metadata["parse"], f.default) for f in fields(cls) if f.init]
        found = tuple(
            sorted(declared, key=lambda spec: _TAIL.index(spec.name) if spec.name in _TAIL else -1)
        )
        _FIELDS[cls] = found
    return found


@dataclass
class Services:
    """What handlers use besides the unit of work: one of these per ledger."""

    claims: Claims
    keyring: Keyring
    last_seen_resolution: Callable[[], timedelta]
    wipe_erased: Callable[[UUID | None], None]
    grants_ended: Callable[[datetime], list[dict[str, Any]]]
    """The rows of `ledger_grant_ends` whose end is at or before the instant."""
    user_ids: Callable[[], list[UUID]]
    """Every user that is not erased (by the claims of their emails), as saved so far."""
    defined_roles: set[tuple[str, str]] = field(default_factory=set)
    separation_enforced: bool = True
    """Off in a ledger that mirrors another system of record: a grant there is a fact, recorded
    even when it breaks a separation-of-duties rule (the `sod-violations` report shows it)."""

    def wipe(self, user_id: UUID | None = None) -> None:
        """Wipe what erasures deleted from the disk (see `Ledger.wipe_erased`)."""
        self.wipe_erased(user_id)

    def check_role(self, uow: UnitOfWork, cls: type[Role | AccountRole], name: str) -> None:
        """A role must be defined before it is granted. Roles are never undefined, so a role
        once found needs no look-up again."""
        key = (cls.catalogue, name)
        if key in self.defined_roles:
            return
        try:
            role = uow.load(cls, cls.id_for(name), cls.__name__)
        except NotFound:
            what = "role" if cls is Role else "account role"
            raise NotFound(f"{what} {shown(name)} is not defined") from None
        if not role.pending_events:  # defined in this batch: not saved yet, perhaps never
            self.defined_roles.add(key)
