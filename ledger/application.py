"""The Ledger: the command side of SPEC §4, as an eventsourcing Application.

Every command validates its input, then runs in `_run`: load, decide, save the events together
with their side rows (claims, command id, keys, credentials) in one transaction. A version
conflict or a lost race for a claim retries the whole command from fresh state; a command id
seen before returns the first result.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import random
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast
from uuid import UUID

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from eventsourcing.application import Application, ProcessingEvent
from eventsourcing.persistence import (
    InfrastructureFactory,
    IntegrityError,
    Mapper,
    OperationalError,
    Recording,
    StoredEvent,
)
from eventsourcing.utils import Environment

from ledger import references
from ledger.domain import (
    DEFAULT_TIMEZONE,
    Account,
    AccountRole,
    AnnotationKey,
    LedgerAggregate,
    Meta,
    Role,
    User,
    project,
)
from ledger.domain.users import FailedLoginReason
from ledger.errors import Conflict, LedgerError, NotFound, ValidationError
from ledger.storage import replay_file
from ledger.storage import side_tables as side
from ledger.storage.database import connect_once, holds_ledger, missing_ledger
from ledger.storage.personal_data import Keyring, PersonalDataMapper
from ledger.storage.recorders import (
    LedgerPostgresFactory,
    LedgerSQLiteFactory,
    SideTableRecorder,
    WipeUnfinished,
)
from ledger.storage.settings import (
    StorageError,
    database_url,
    eventsourcing_env,
    is_postgres,
    is_writable,
    read_only_url,
    url_shown,
    whole_number_setting,
)
from ledger.unit_of_work import UnitOfWork

if TYPE_CHECKING:
    from ledger.batch import Batch
from ledger.validation import (
    AccountName,
    Actor,
    AnnotationType,
    Colour,
    CommandId,
    Content,
    Description,
    Email,
    IpAddress,
    LogoUrl,
    Moment,
    Password,
    Reason,
    SourceName,
    Timezone,
    Username,
    as_uuid,
    is_valid,
    now,
    optional,
    role_name,
    shown,
    valid,
)
from ledger.validation import role_names as role_names_of

R = TypeVar("R")


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()
"""Default of `update_*` keyword arguments: leave that field as it is."""


@dataclass(frozen=True)
class Secret:
    """A command argument that never enters the command's fingerprint: a command id repeated
    with only its secrets changed returns the first result."""

    value: Any = field(repr=False)


_EMAIL: Final = side.EMAIL
_USERNAME: Final = side.USERNAME
_ACCOUNT_NAME: Final = side.ACCOUNT_NAME
_HMAC_SECRET: Final = side.HMAC_SECRET
FAILED_LOGIN_ACTOR: Final = "unauthenticated"
_CLAIM_TYPES: Final = {_EMAIL: Email, _USERNAME: Username, _ACCOUNT_NAME: AccountName}


LAST_SEEN_VARIABLE: Final = "LEDGER_LAST_SEEN_RESOLUTION"
DEFAULT_LAST_SEEN_RESOLUTION: Final = 300  # seconds

CACHE_VARIABLE: Final = "LEDGER_AGGREGATE_CACHE_MAXSIZE"
DEFAULT_CACHE_SIZE: Final = 10_000  # aggregates; about 2 KB each


def aggregate_cache_size() -> int:
    """How many aggregates each process keeps: `LEDGER_AGGREGATE_CACHE_MAXSIZE` if set."""
    size = whole_number_setting(CACHE_VARIABLE, minimum=1)
    return DEFAULT_CACHE_SIZE if size is None else size


def is_contention(error: Exception) -> bool:
    """Whether a failed save clashed with another writer (worth running the command again on
    fresh state) rather than met a fault. SQLite reports a missing table or a read-only file as
    an OperationalError too, as it does a lock held too long."""
    cause = error.__cause__
    if isinstance(error, OperationalError) and isinstance(cause, sqlite3.OperationalError):
        return any(word in str(cause).lower() for word in ("locked", "busy"))
    return isinstance(error, IntegrityError | OperationalError)


class Ledger(Application[UUID]):
    """The write side. `Ledger(url=...)`; without a URL, `LEDGER_DATABASE_URL`, else
    `sqlite:///ledger.db`. `clock` (for imports and tests) supplies event timestamps.
    `create=False`: a database that holds no ledger is refused (NotFound), not set up.
    `read_only`: never write to the database (commands raise StorageError); by default, when
    the database cannot be written (a SQLite URL with `mode=ro`, a read-only file or folder)."""

    name = "Ledger"
    max_attempts = 30
    wipe_timeout = 30.0  # seconds an erasure waits for other transactions before it gives up

    def __init__(
        self,
        url: str | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
        create: bool = True,
        read_only: bool | None = None,
    ) -> None:
        given = database_url(url)
        replay_file.refuse(given, "it takes no commands and has no log to verify")
        self.shown_url = url_shown(given)
        self.read_only = not is_writable(given) if read_only is None else read_only
        self.url = read_only_url(given) if self.read_only else given
        create = create and not self.read_only
        if not create and not holds_ledger(self.url, _HMAC_SECRET):
            raise NotFound(f"no ledger in {self.shown_url}: {missing_ledger(self.url)}")
        if create and is_postgres(self.url):
            connect_once(self.url)
        self._keyring = Keyring()
        self._clock = clock or now
        self._local = threading.local()
        self._defined_roles: set[tuple[str, str]] = set()
        self._hasher = PasswordHasher()
        cache_size = str(aggregate_cache_size())
        settings = {
            "AGGREGATE_CACHE_MAXSIZE": cache_size,
            CACHE_VARIABLE: cache_size,  # eventsourcing would read the raw variable first
            "CREATE_TABLE": "y" if create else "n",
            **eventsourcing_env(self.url),
        }
        super().__init__(env=settings)
        self.side = cast(SideTableRecorder, self.recorder)
        self._keyring.attach(self._lookup_key, self._lookup_keys, self._lookup_user_key)
        if not create and not self.read_only:
            # side tables added since the ledger was made
            cast(Any, self.recorder).create_table()
        self._secret = self._load_secret()
        resolution = whole_number_setting(LAST_SEEN_VARIABLE, minimum=0)
        self.last_seen_resolution = timedelta(
            seconds=DEFAULT_LAST_SEEN_RESOLUTION if resolution is None else resolution
        )

    def _refuse_writes(self) -> None:
        if self.read_only:
            raise StorageError(f"{self.shown_url} is open read-only: nothing was recorded")

    # -- wiring -------------------------------------------------------------------------------

    def construct_factory(self, env: Environment) -> InfrastructureFactory[Any]:
        factory = LedgerPostgresFactory if is_postgres(self.url) else LedgerSQLiteFactory
        return factory(env)

    def construct_mapper(self) -> Mapper[UUID]:
        return PersonalDataMapper(self.construct_transcoder(), self._keyring)

    def save(self, *objs: Any, **kwargs: Any) -> list[Recording[UUID]]:
        """`Application.save`, less its two `isinstance` checks per object against runtime
        Protocols when every object is one of our aggregates (profiled: 0.43 of 7.2 s of a
        batch import; 60 of 1,350 us of a single command)."""
        self._refuse_writes()
        if not all(isinstance(obj, LedgerAggregate) for obj in objs):
            return super().save(*objs, **kwargs)
        processing: ProcessingEvent[UUID] = ProcessingEvent()
        for aggregate in objs:
            processing.events.extend(aggregate.collect_events())
            processing.aggregates[aggregate.id] = aggregate
        processing.saved_kwargs.update(kwargs)
        recordings = self._record(processing)
        self._cache_saved(cast("tuple[LedgerAggregate, ...]", objs))
        self._take_snapshots(processing)
        self._notify(recordings)
        return recordings

    def _cache_saved(self, aggregates: Iterable[LedgerAggregate]) -> None:
        """Keep what was just saved in the aggregate cache (eventsourcing leaves the cached
        copy behind when it fast-forwards), so the next command can take it unconfirmed."""
        cache = self.repository.cache
        if cache is None:
            return
        for aggregate in aggregates:
            with suppress(KeyError):
                if cast(LedgerAggregate, cache.get(aggregate.id)).version >= aggregate.version:
                    continue  # another thread saved a newer one meanwhile
            cache.put(aggregate.id, aggregate)

    def _load_secret(self) -> bytes:
        return self.named_secret(_HMAC_SECRET)

    def named_secret(self, name: str) -> bytes:
        """A random server-side secret, made once per database and kept outside the events
        (the keyed hashes use one; the read API signs its tokens with another)."""
        row = self.side.select_one(side.SELECT_SECRET, (name,))
        if row is None:
            self._refuse_writes()
            self.side.write_side([side.put_secret_if_absent(name, secrets.token_hex(32))])
            row = self.side.select_one(side.SELECT_SECRET, (name,))
        assert row is not None
        return bytes.fromhex(row["value"])

    def _lookup_key(self, key_id: str) -> bytes | None:
        row = self.side.select_one(side.SELECT_KEY_BY_ID, (key_id,))
        return None if row is None else base64.b64decode(row["secret"])

    def _lookup_keys(self, key_ids: list[str]) -> dict[str, bytes]:
        rows = self._select_in(
            "SELECT key_id, secret FROM ledger_user_keys WHERE key_id IN ({marks})", key_ids
        )
        return {row["key_id"]: base64.b64decode(row["secret"]) for row in rows}

    def _select_in(self, sql: str, values: Sequence[str], *before: str) -> list[dict[str, Any]]:
        """The rows of `sql` (parameters `before`, then `IN ({marks})`) for many values, in
        queries of 500 values each."""
        rows: list[dict[str, Any]] = []
        for start in range(0, len(values), 500):
            chunk = values[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            rows.extend(self.side.select_all(sql.format(marks=marks), (*before, *chunk)))
        return rows

    def to_domain_events(
        self, stored_events: Sequence[StoredEvent], *, opened: bool = True
    ) -> list[Any]:
        """Decode stored events (notifications too), personal data decrypted, the keys they
        need looked up in one query; with `opened=False`, personal data left sealed."""
        mapper = cast(PersonalDataMapper, self.mapper)
        return mapper.to_domain_events(stored_events, opened=opened)

    def _lookup_user_key(self, user_id: UUID) -> tuple[str, bytes] | None:
        row = self.side.select_one(side.SELECT_KEY_FOR_USER, (str(user_id),))
        return None if row is None else (row["key_id"], base64.b64decode(row["secret"]))

    def _claim_key(self, kind: str, value: str) -> str:
        return side.claim_key(self._secret, kind, value)

    def _claim_owner(self, kind: str, value: str) -> UUID | None:
        """Who holds a unique value: as the current batch left it, else as stored."""
        return self._key_owner(kind, self._claim_key(kind, value))

    def _key_owner(self, kind: str, key: str) -> UUID | None:
        batch = self._batch_uow()
        if batch is not None:
            known, owner = batch.claimed(kind, key)
            if known:
                return owner
        row = self.side.select_one(side.SELECT_CLAIM_OWNER, (kind, key))
        return None if row is None else UUID(row["owner_id"])

    def _email_key_as_given(self, email: Any) -> str | None:
        """The claim key of an email as given, unvalidated, for look-ups (validating an email
        costs ~30 us, and an import names a user by email on every line). Sound because email
        keys are casefolded: an ASCII email that a stored key matches is, up to case, the
        normal form of a valid email, so validating it would give the same key. A miss proves
        nothing; the caller then validates and looks again."""
        if not isinstance(email, str):
            return None
        text = email.strip()
        return self._claim_key(_EMAIL, text) if text and text.isascii() else None

    def _claim(self, uow: UnitOfWork, kind: str, value: str, owner_id: UUID) -> None:
        key = self._claim_key(kind, value)
        uow.write(side.claim(kind, key, owner_id))
        uow.claims[(kind, key)] = owner_id

    def _release(self, uow: UnitOfWork, kind: str, value: str) -> None:
        key = self._claim_key(kind, value)
        uow.write(side.release(kind, key))
        uow.claims[(kind, key)] = None

    # -- batches and dry runs -------------------------------------------------------------------

    @property
    def last_recorded(self) -> bool:
        """Whether this thread's last command recorded anything (False for a no-op, or for a
        command id applied before)."""
        return bool(getattr(self._local, "recorded", False))

    def _batch_uow(self) -> UnitOfWork | None:
        return getattr(self._local, "batch", None)

    @contextmanager
    def batch(self) -> Iterator[Batch]:
        """Run commands in one transaction: each still validates against the state the earlier
        ones left, and a rejected one changes nothing; `commit()` saves them all at once."""
        if self._batch_uow() is not None:
            raise RuntimeError("batches do not nest")
        from ledger.batch import Batch

        batch = Batch(self, UnitOfWork(self.repository, self._meta("batch", None, None)))
        self._local.batch = batch.uow
        try:
            yield batch
        finally:
            self._local.batch = None

    def _prefetch_commands(self, uow: UnitOfWork, command_ids: list[str]) -> None:
        unique = [c for c in dict.fromkeys(command_ids) if is_valid(CommandId, c)]
        rows = self._select_in(
            "SELECT command_id, fingerprint, result FROM ledger_commands "
            "WHERE command_id IN ({marks})",
            unique,
        )
        found = {row["command_id"]: row for row in rows}
        for command_id in unique:
            row = found.get(command_id)
            if row is None:
                uow.commands_not_applied.add(command_id)
            else:
                uow.command_results[command_id] = (row["fingerprint"], _decode(row["result"]))

    def _prefetch_claims(self, uow: UnitOfWork, wanted: list[tuple[str, str]]) -> None:
        """Look up, a few queries per kind, who holds these unique values; the batch then
        answers its own look-ups. A value claimed concurrently meanwhile makes the batch's
        commit fail, and its lines are re-run one by one."""
        keys: dict[str, set[str]] = {}
        for kind, value in wanted:
            if kind == _EMAIL and (as_given := self._email_key_as_given(value)) is not None:
                if (kind, as_given) not in uow.claims:
                    keys.setdefault(kind, set()).add(as_given)
                continue
            try:
                key = self._claim_key(kind, valid(_CLAIM_TYPES[kind], value, kind))
            except ValidationError:
                continue
            if (kind, key) not in uow.claims:
                keys.setdefault(kind, set()).add(key)
        for kind, kind_keys in keys.items():
            rows = self._select_in(
                "SELECT key, owner_id FROM ledger_claims WHERE kind = ? AND key IN ({marks})",
                sorted(kind_keys),
                kind,
            )
            owners = {row["key"]: UUID(row["owner_id"]) for row in rows}
            for key in kind_keys:
                uow.claims[(kind, key)] = owners.get(key)

    def _preload(self, uow: UnitOfWork, aggregate_ids: Iterable[UUID]) -> None:
        """Bring these aggregates up to date in a few queries instead of one or two each: the
        events each lacks (all of them, if it is not cached) in one query per chunk, and the
        keys to decode them in another. Ids that name nothing are left for `load` to reject."""
        cache = self.repository.cache
        wanted = [i for i in dict.fromkeys(aggregate_ids) if not uow.holds(i)]
        for start in range(0, len(wanted), 400):
            chunk = wanted[start : start + 400]
            cached: dict[UUID, LedgerAggregate] = {}
            if cache is not None:
                for aggregate_id in chunk:
                    with suppress(KeyError):
                        cached[aggregate_id] = cast(LedgerAggregate, cache.get(aggregate_id))
            stored = self.side.events_after(
                [(i, cached[i].version if i in cached else 0) for i in chunk]
            )
            by_aggregate: dict[UUID, list[Any]] = {}
            for event in self.to_domain_events(stored):
                by_aggregate.setdefault(event.originator_id, []).append(event)
            for aggregate_id in chunk:
                events = by_aggregate.get(aggregate_id, [])
                aggregate = cached.get(aggregate_id)
                if events:
                    aggregate = project(copy.deepcopy(aggregate), events)
                    if cache is not None:
                        cache.put(aggregate_id, aggregate)
                if aggregate is not None:
                    uow.add_loaded(copy.deepcopy(aggregate))

    def _commit_batch(self, uow: UnitOfWork) -> None:
        """Save a batch's events and side rows in one transaction (no retry: on a conflict the
        caller re-runs the commands one by one)."""
        changed = uow.changed()
        if changed or uow.side_writes:
            self.save(*changed, side_writes=uow.side_writes)
        for callback in uow.after_commit:
            callback()

    # -- running a command --------------------------------------------------------------------

    def _run(
        self,
        command: str,
        args: dict[str, Any],
        handle: Callable[[UnitOfWork], R],
        *,
        actor: Any,
        reason: Any = None,
        command_id: Any = None,
    ) -> R:
        actor = valid(Actor, actor, "actor")
        reason = optional(Reason, reason, "reason") or None
        command_id = optional(CommandId, command_id, "command_id")
        fingerprint = "" if command_id is None else self._fingerprint(command, args)
        batch = self._batch_uow()
        if batch is not None:
            return self._run_in_batch(
                batch, command, fingerprint, handle, actor, reason, command_id
            )
        for attempt in range(self.max_attempts):
            self._local.recorded = False
            if command_id is not None:
                found, prior = self._prior_result(None, command_id, fingerprint, command)
                if found:
                    return cast(R, prior)
            # The first attempt decides on cached aggregates as they are, without a query for
            # newer events. What it changes is safe: saving a stale aggregate's event clashes
            # on its version. What it only read is confirmed below in one query.
            uow = UnitOfWork(
                self.repository, self._meta(actor, reason, command_id), optimistic=attempt == 0
            )
            try:
                result = handle(uow)
            except LedgerError:
                if self._stale(uow.unverified.items()):  # nothing is saved: confirm them all
                    continue
                raise
            if self._stale(uow.unverified_unchanged()):
                continue
            writes = list(uow.side_writes)
            if command_id is not None:
                writes.append(side.remember_command(command_id, fingerprint, _encode(result)))
            changed = uow.changed()
            if not changed and not writes:
                return result
            try:
                self.save(*changed, side_writes=writes)
            except (IntegrityError, OperationalError) as error:
                # A concurrent writer won a version, a claim or the command id (or held the
                # database lock too long), or a cached aggregate was stale. Retrying from
                # fresh state either succeeds or rejects the command with a clear error.
                if not is_contention(error):
                    raise
                if not uow.unverified:
                    self._back_off(attempt)
            else:
                for callback in uow.after_commit:
                    callback()
                self._local.recorded = bool(changed) or len(writes) > (command_id is not None)
                return result
        raise Conflict(
            f"{command} was not applied: concurrent changes kept conflicting "
            f"after {self.max_attempts} attempts; try again"
        )

    def _stale(self, taken: Iterable[tuple[UUID, int]]) -> bool:
        """Whether any of these cached aggregates, taken unconfirmed at these versions, has
        newer events in the database (then the command must run again on fresh state)."""
        versions = list(taken)
        return bool(versions) and bool(self.side.events_after(versions))

    def _meta(self, actor: str, reason: str | None, command_id: str | None) -> Meta:
        return Meta(actor, reason, command_id, valid(Moment, self._clock(), "clock time"))

    def _run_in_batch(
        self,
        uow: UnitOfWork,
        command: str,
        fingerprint: str,
        handle: Callable[[UnitOfWork], R],
        actor: str,
        reason: str | None,
        command_id: str | None,
    ) -> R:
        self._local.recorded = False
        if command_id is not None:
            found, prior = self._prior_result(uow, command_id, fingerprint, command)
            if found:
                return cast(R, prior)
        uow.begin_command(self._meta(actor, reason, command_id))
        try:
            result = handle(uow)
        except LedgerError:
            if uow.command_changed():  # handlers must reject before their first change
                raise RuntimeError(f"{command} changed state before it was rejected") from None
            raise
        self._local.recorded = uow.command_changed()
        if command_id is not None:
            uow.write(side.remember_command(command_id, fingerprint, _encode(result)))
            uow.command_results[command_id] = (fingerprint, result)
        return result

    @staticmethod
    def _back_off(attempt: int) -> None:
        """Exponential back-off with full jitter, so colliding writers spread out."""
        time.sleep(random.uniform(0, min(0.25, 0.002 * 2**attempt)))

    def _fingerprint(self, command: str, args: dict[str, Any]) -> str:
        """A keyed hash of the command and its arguments, less its secrets: the key is in the
        same database, so a copy of it could test guesses of anything hashed here."""
        public = {name: value for name, value in args.items() if not isinstance(value, Secret)}
        canonical = json.dumps({"command": command, "args": public}, sort_keys=True, default=str)
        return hmac.new(self._secret, canonical.encode(), hashlib.sha256).hexdigest()

    def _prior_result(
        self, uow: UnitOfWork | None, command_id: str, fingerprint: str, command: str
    ) -> tuple[bool, Any]:
        """Whether the command id was applied before (in this batch or stored), and its result."""
        if uow is not None and command_id in uow.command_results:
            stored_fingerprint, result = uow.command_results[command_id]
        elif uow is not None and command_id in uow.commands_not_applied:
            return False, None
        else:
            row = self.side.select_one(side.SELECT_COMMAND, (command_id,))
            if row is None:
                return False, None
            stored_fingerprint, result = row["fingerprint"], _decode(row["result"])
        if stored_fingerprint != fingerprint:
            raise Conflict(
                f"command_id {shown(command_id)} was already used for a different command or "
                f"different arguments than this {command}"
            )
        return True, result

    def _meta_with_reason(self, meta: Meta, reason: str) -> Meta:
        return Meta(meta.actor, reason, meta.command_id, meta.timestamp)

    def _check_role(self, uow: UnitOfWork, cls: type[Role | AccountRole], name: str) -> None:
        """A role must be defined before it is granted. Roles are never undefined, so a role
        once found needs no look-up again."""
        key = (cls.catalogue, name)
        if key in self._defined_roles:
            return
        try:
            role = uow.load(cls, cls.id_for(name), cls.__name__)
        except NotFound:
            what = "role" if cls is Role else "account role"
            raise NotFound(f"{what} {shown(name)} is not defined") from None
        if not role.pending_events:  # defined in this batch: not saved yet, perhaps never
            self._defined_roles.add(key)

    # -- role catalogues ------------------------------------------------------------------------

    def define_role(
        self,
        name: Any,
        description: Any = None,
        *,
        actor: Any,
        reason: Any = None,
        command_id: Any = None,
    ) -> bool:
        return self._define(Role, "define_role", name, description, actor, reason, command_id)

    def define_account_role(
        self,
        name: Any,
        description: Any = None,
        *,
        actor: Any,
        reason: Any = None,
        command_id: Any = None,
    ) -> bool:
        return self._define(
            AccountRole, "define_account_role", name, description, actor, reason, command_id
        )

    def _define(
        self,
        cls: type[Role | AccountRole],
        command: str,
        name: Any,
        description: Any,
        actor: Any,
        reason: Any,
        command_id: Any,
    ) -> bool:
        what = "role" if cls is Role else "account role"
        name = role_name(name, what)
        description = optional(Description, description, "description")

        def handle(uow: UnitOfWork) -> bool:
            if uow.exists(cls, cls.id_for(name)):
                raise Conflict(f"{what} {shown(name)} is already defined")
            uow.add(cls.define(name, description, uow.meta))
            return True

        args = {"name": name, "description": description}
        return self._run(command, args, handle, actor=actor, reason=reason, command_id=command_id)

    # -- accounts -------------------------------------------------------------------------------

    def create_account(
        self,
        name: Any,
        *,
        actor: Any,
        roles: Iterable[Any] = (),
        consultancy_account_id: Any = None,
        primary_color: Any = None,
        secondary_color: Any = None,
        logo_url: Any = None,
        reason: Any = None,
        command_id: Any = None,
    ) -> UUID:
        name = valid(AccountName, name, "account name")
        primary_color = optional(Colour, primary_color, "primary_color")
        secondary_color = optional(Colour, secondary_color, "secondary_color")
        _check_colour_pair(primary_color, secondary_color)
        logo_url = optional(LogoUrl, logo_url, "logo_url")
        role_names = role_names_of(roles, "account role")
        consultancy = _optional_id(consultancy_account_id, "consultancy account")

        def handle(uow: UnitOfWork) -> UUID:
            self._check_name_free(name, None)
            if consultancy is not None:
                uow.load(Account, consultancy, "consultancy account").check_open()
            for role in role_names:
                self._check_role(uow, AccountRole, role)
            account = Account.create(
                name=name,
                primary_color=primary_color,
                secondary_color=secondary_color,
                logo_url=logo_url,
                consultancy_account_id=consultancy,
                meta=uow.meta,
            )
            for role in role_names:
                account.grant_role(role, uow.meta)
            uow.add(account)
            self._claim(uow, _ACCOUNT_NAME, name, account.id)
            return account.id

        args = {
            "name": name,
            "roles": role_names,
            "consultancy_account_id": consultancy,
            "primary_color": primary_color,
            "secondary_color": secondary_color,
            "logo_url": logo_url,
        }
        return self._run(
            "create_account", args, handle, actor=actor, reason=reason, command_id=command_id
        )

    def _check_name_free(self, name: str, account_id: UUID | None) -> None:
        owner = self._claim_owner(_ACCOUNT_NAME, name)
        if owner is not None and owner != account_id:
            raise Conflict(f"account name {shown(name)} is already taken by open account {owner}")

    def update_account(
        self,
        account: Any,
        *,
        actor: Any,
        name: Any = UNSET,
        primary_color: Any = UNSET,
        secondary_color: Any = UNSET,
        logo_url: Any = UNSET,
        reason: Any = None,
        command_id: Any = None,
    ) -> bool:
        account_id = as_uuid(account, "account")
        changes: dict[str, Any] = {}
        if name is not UNSET:
            changes["name"] = valid(AccountName, name, "account name")
        if primary_color is not UNSET:
            changes["primary_color"] = optional(Colour, primary_color, "primary_color")
        if secondary_color is not UNSET:
            changes["secondary_color"] = optional(Colour, secondary_color, "secondary_color")
        if logo_url is not UNSET:
            changes["logo_url"] = optional(LogoUrl, logo_url, "logo_url")

        def handle(uow: UnitOfWork) -> bool:
            acc = uow.load(Account, account_id, "account")
            acc.check_open()
            _check_colour_pair(
                changes.get("primary_color", acc.primary_color),
                changes.get("secondary_color", acc.secondary_color),
            )
            old_name = acc.name
            new_name = changes.get("name", old_name)
            if new_name != old_name:
                self._check_name_free(new_name, acc.id)
            if not acc.update(changes, uow.meta):
                return False
            if new_name != old_name:
                self._release(uow, _ACCOUNT_NAME, old_name)
                self._claim(uow, _ACCOUNT_NAME, new_name, acc.id)
            return True

        args = {"account": account_id, **changes}
        return self._run(
            "update_account", args, handle, actor=actor, reason=reason, command_id=command_id
        )

    def grant_account_role(
        self, account: Any, role: Any, *, actor: Any, reason: Any = None, command_id: Any = None
    ) -> bool:
        return self._change_account_role(
            "grant_account_role", account, role, actor, reason, command_id
        )

    def revoke_account_role(
        self, account: Any, role: Any, *, actor: Any, reason: Any = None, command_id: Any = None
    ) -> bool:
        return self._change_account_role(
            "revoke_account_role", account, role, actor, reason, command_id
        )

    def _change_account_role(
        self, command: str, account: Any, role: Any, actor: Any, reason: Any, command_id: Any
    ) -> bool:
        account_id = as_uuid(account, "account")
        name = role_name(role, "account role")

        def handle(uow: UnitOfWork) -> bool:
            acc = uow.load(Account, account_id, "account")
            self._check_role(uow, AccountRole, name)
            if command == "grant_account_role":
                return acc.grant_role(name, uow.meta)
            return acc.revoke_role(name, uow.meta)

        args = {"account": account_id, "role": name}
        return self._run(command, args, handle, actor=actor, reason=reason, command_id=command_id)

    def set_consultancy(
        self,
        account: Any,
        consultancy_account_id: Any,
        *,
        actor: Any,
        reason: Any = None,
        command_id: Any = None,
    ) -> bool:
        account_id = as_uuid(account, "account")
        consultancy = _optional_id(consultancy_account_id, "consultancy account")
        if consultancy == account_id:
            raise ValidationError(f"account {account_id} cannot be its own consultancy")

        def handle(uow: UnitOfWork) -> bool:
            acc = uow.load(Account, account_id, "account")
            acc.check_open()
            if consultancy is not None:
                uow.load(Account, consultancy, "consultancy account").check_open()
                self._check_no_cycle(uow, account_id, consultancy)
            return acc.set_consultancy(consultancy, uow.meta)

        args = {"account": account_id, "consultancy_account_id": consultancy}
        return self._run(
            "set_consultancy", args, handle, actor=actor, reason=reason, command_id=command_id
        )

    def _check_no_cycle(self, uow: UnitOfWork, account_id: UUID, consultancy: UUID) -> None:
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

    def close_account(
        self, account: Any, *, actor: Any, reason: Any = None, command_id: Any = None
    ) -> bool:
        account_id = as_uuid(account, "account")

        def handle(uow: UnitOfWork) -> bool:
            acc = uow.load(Account, account_id, "account")
            if acc.closed:
                return False
            leaving = self._meta_with_reason(uow.meta, "account closed")
            for user_id in sorted(acc.members):
                uow.load(User, user_id, "user").deactivate(leaving)
            acc.close(uow.meta)
            self._release(uow, _ACCOUNT_NAME, acc.name)
            return True

        args = {"account": account_id}
        return self._run(
            "close_account", args, handle, actor=actor, reason=reason, command_id=command_id
        )

    # -- users ----------------------------------------------------------------------------------

    def create_user(
        self,
        email: Any,
        *,
        account_id: Any,
        actor: Any,
        username: Any = None,
        timezone: Any = DEFAULT_TIMEZONE,
        roles: Iterable[Any] = (),
        password: Any = None,
        reason: Any = None,
        command_id: Any = None,
    ) -> UUID:
        email = valid(Email, email, "email")
        account = as_uuid(account_id, "account")
        username = optional(Username, username, "username")
        timezone = valid(Timezone, timezone, "timezone")
        role_names = role_names_of(roles, "role")
        password = optional(Password, password, "password")
        password_hash = None if password is None else self._hasher.hash(password)

        def handle(uow: UnitOfWork) -> UUID:
            acc = uow.load(Account, account, "account")
            acc.check_open()
            if self._claim_owner(_EMAIL, email) is not None:
                raise Conflict(f"email {shown(email)} is already taken")
            chosen = username or self._default_username(email)
            if self._claim_owner(_USERNAME, chosen) is not None:
                raise Conflict(f"username {shown(chosen)} is already taken")
            for role in role_names:
                self._check_role(uow, Role, role)
            user = User.create(
                email=email, username=chosen, account_id=acc.id, timezone=timezone, meta=uow.meta
            )
            key_id, key = self._keyring.new_key()
            self._keyring.stage(user.id, key_id, key)
            uow.write(side.put_user_key(key_id, user.id, base64.b64encode(key).decode()))
            uow.add(user)
            acc.add_member(user.id, uow.meta)
            for role in role_names:
                user.grant_role(role, uow.meta)
            if password_hash is not None:
                user.change_password(uow.meta)
                uow.write(
                    side.put_credential(user.id, password_hash, uow.meta.timestamp.isoformat())
                )
            self._claim(uow, _EMAIL, email, user.id)
            self._claim(uow, _USERNAME, chosen, user.id)
            return user.id

        args = {
            "email": email,
            "account_id": account,
            "username": username,
            "timezone": timezone,
            "roles": role_names,
            "password": Secret(password),
        }
        return self._run(
            "create_user", args, handle, actor=actor, reason=reason, command_id=command_id
        )

    def _default_username(self, email: str) -> str:
        local_part = email.rsplit("@", 1)[0]
        return email if self._claim_owner(_USERNAME, local_part) is not None else local_part

    def update_user(
        self,
        user: Any,
        *,
        actor: Any,
        email: Any = UNSET,
        username: Any = UNSET,
        timezone: Any = UNSET,
        reason: Any = None,
        command_id: Any = None,
    ) -> bool:
        user_id = self.resolve_user(user)
        new_email = None if email is UNSET else valid(Email, email, "email")
        new_username = None if username is UNSET else valid(Username, username, "username")
        new_timezone = None if timezone is UNSET else valid(Timezone, timezone, "timezone")

        def handle(uow: UnitOfWork) -> bool:
            usr = uow.load(User, user_id, "user")
            old_email, old_username = usr.email, usr.username
            email_moves = new_email is not None and new_email.casefold() != old_email.casefold()
            username_moves = new_username is not None and new_username != old_username
            if email_moves and self._claim_owner(_EMAIL, new_email or "") is not None:
                raise Conflict(f"email {shown(new_email)} is already taken")
            if username_moves and self._claim_owner(_USERNAME, new_username or "") is not None:
                raise Conflict(f"username {shown(new_username)} is already taken")
            if not usr.update(
                uow.meta, email=new_email, username=new_username, timezone=new_timezone
            ):
                return False
            if email_moves:
                self._release(uow, _EMAIL, old_email)
                self._claim(uow, _EMAIL, usr.email, usr.id)
            if username_moves:
                self._release(uow, _USERNAME, old_username)
                self._claim(uow, _USERNAME, usr.username, usr.id)
            return True

        args = {
            "user": user_id,
            "email": new_email,
            "username": new_username,
            "timezone": new_timezone,
        }
        return self._run(
            "update_user", args, handle, actor=actor, reason=reason, command_id=command_id
        )

    def grant_role(
        self, user: Any, role: Any, *, actor: Any, reason: Any = None, command_id: Any = None
    ) -> bool:
        return self._change_role("grant_role", user, role, actor, reason, command_id)

    def revoke_role(
        self, user: Any, role: Any, *, actor: Any, reason: Any = None, command_id: Any = None
    ) -> bool:
        return self._change_role("revoke_role", user, role, actor, reason, command_id)

    def _change_role(
        self, command: str, user: Any, role: Any, actor: Any, reason: Any, command_id: Any
    ) -> bool:
        user_id = self.resolve_user(user)
        name = role_name(role)

        def handle(uow: UnitOfWork) -> bool:
            usr = uow.load(User, user_id, "user")
            self._check_role(uow, Role, name)
            if command == "grant_role":
                return usr.grant_role(name, uow.meta)
            return usr.revoke_role(name, uow.meta)

        args = {"user": user_id, "role": name}
        return self._run(command, args, handle, actor=actor, reason=reason, command_id=command_id)

    def deactivate_user(
        self, user: Any, *, actor: Any, reason: Any = None, command_id: Any = None
    ) -> bool:
        user_id = self.resolve_user(user)

        def handle(uow: UnitOfWork) -> bool:
            return uow.load(User, user_id, "user").deactivate(uow.meta)

        return self._run(
            "deactivate_user",
            {"user": user_id},
            handle,
            actor=actor,
            reason=reason,
            command_id=command_id,
        )

    def reactivate_user(
        self, user: Any, *, actor: Any, reason: Any = None, command_id: Any = None
    ) -> bool:
        user_id = self.resolve_user(user)

        def handle(uow: UnitOfWork) -> bool:
            usr = uow.load(User, user_id, "user")
            if usr.active:
                return False
            uow.load(Account, usr.account_id, "account").check_open()
            return usr.reactivate(uow.meta)

        return self._run(
            "reactivate_user",
            {"user": user_id},
            handle,
            actor=actor,
            reason=reason,
            command_id=command_id,
        )

    def record_login(
        self, user: Any, *, at: Any = None, ip: Any = None, command_id: Any = None
    ) -> bool:
        user_id = self.resolve_user(user)
        moment = optional(Moment, at, "at")
        address = optional(IpAddress, ip, "ip")

        def handle(uow: UnitOfWork) -> bool:
            usr = uow.load(User, user_id, "user")
            usr.record_login(moment or uow.meta.timestamp, address, uow.meta)
            return True

        args = {"user": user_id, "at": moment, "ip": address}
        return self._run("record_login", args, handle, actor=str(user_id), command_id=command_id)

    def record_failed_login(
        self,
        user: Any,
        *,
        at: Any = None,
        ip: Any = None,
        reason_kind: Any,
        command_id: Any = None,
    ) -> bool:
        """A failed attempt to log in as `user`, a security event: `reason_kind` says why
        (wrong-password, no-password, inactive, erased, account-closed). The actor is
        `unauthenticated`, as the attempt proves no one's identity; the client address goes
        in `ip`, sealed as personal data, never in the actor."""
        user_id = self.resolve_user(user)
        moment = optional(Moment, at, "at")
        address = optional(IpAddress, ip, "ip")
        kind = valid(FailedLoginReason, reason_kind, "reason_kind")

        def handle(uow: UnitOfWork) -> bool:
            usr = uow.load(User, user_id, "user")
            usr.record_failed_login(moment or uow.meta.timestamp, address, kind, uow.meta)
            return True

        args = {"user": user_id, "at": moment, "ip": address, "reason_kind": kind}
        return self._run(
            "record_failed_login", args, handle, actor=FAILED_LOGIN_ACTOR, command_id=command_id
        )

    def record_last_seen(self, user: Any, *, at: Any = None, command_id: Any = None) -> bool:
        user_id = self.resolve_user(user)
        moment = optional(Moment, at, "at")

        def handle(uow: UnitOfWork) -> bool:
            usr = uow.load(User, user_id, "user")
            return usr.record_last_seen(
                moment or uow.meta.timestamp, self.last_seen_resolution, uow.meta
            )

        args = {"user": user_id, "at": moment}
        return self._run(
            "record_last_seen", args, handle, actor=str(user_id), command_id=command_id
        )

    def set_password(
        self, user: Any, password: Any, *, actor: Any, reason: Any = None, command_id: Any = None
    ) -> bool:
        user_id = self.resolve_user(user)
        password = valid(Password, password, "password")
        password_hash = self._hasher.hash(password)

        def handle(uow: UnitOfWork) -> bool:
            usr = uow.load(User, user_id, "user")
            usr.change_password(uow.meta)
            uow.write(side.put_credential(usr.id, password_hash, uow.meta.timestamp.isoformat()))
            return True

        args = {"user": user_id, "password": Secret(password)}
        return self._run(
            "set_password", args, handle, actor=actor, reason=reason, command_id=command_id
        )

    def erase_user(self, user: Any, *, actor: Any, reason: Any, command_id: Any = None) -> bool:
        """Delete the user's key, claims and credential, record UserErased, and wipe what the
        deleted rows held from the disk before returning. Erasing an erased user records
        nothing and returns False, but still finishes a wipe that was cut short."""
        user_id = self.resolve_user(user)
        if reason is None or not str(reason).strip():
            raise ValidationError(f"invalid reason {shown(reason)}: erasing a user needs a reason")
        in_batch = self._batch_uow() is not None

        def handle(uow: UnitOfWork) -> bool:
            usr = uow.load(User, user_id, "user")
            if not usr.erase(uow.meta):
                return False
            uow.write(
                side.release_all(usr.id),
                side.delete_user_keys(usr.id),
                side.delete_credential(usr.id),
            )
            uow.after_commit.append(lambda: self._keyring.forget(usr.id))
            if in_batch and self._wipe_erased not in uow.after_commit:
                uow.after_commit.append(self._wipe_erased)  # once, after the batch is saved
            return True

        erased = self._run(
            "erase_user",
            {"user": user_id},
            handle,
            actor=actor,
            reason=reason,
            command_id=command_id,
        )
        if not in_batch:
            self._wipe_erased(user_id)
        return erased

    def _wipe_erased(self, user_id: UUID | None = None) -> None:
        try:
            self.side.wipe_deleted(self.wipe_timeout)
        except WipeUnfinished as error:
            who = "the user" if user_id is None else f"user {user_id}"
            raise LedgerError(
                f"the erasure of {who} is recorded, but the deleted key and personal data are "
                f"not yet wiped from the disk: {error}; erase {who} again (it records nothing "
                "more and finishes the wipe) once those transactions have ended"
            ) from None

    # -- annotations ----------------------------------------------------------------------------

    def add_annotation(
        self,
        account: Any,
        *,
        content: Any,
        start: Any,
        end: Any,
        source: Any,
        type: Any = "label",
        belief_time: Any = None,
        actor: Any,
        reason: Any = None,
        command_id: Any = None,
    ) -> UUID:
        account_id = as_uuid(account, "account")
        content = valid(Content, content, "content")
        start = valid(Moment, start, "start")
        end = valid(Moment, end, "end")
        if end <= start:
            raise ValidationError(
                f"invalid end {end.isoformat()}: must be after start {start.isoformat()}"
            )
        belief_time = optional(Moment, belief_time, "belief_time")
        kind = valid(AnnotationType, type, "annotation type")
        source_name, source_user = self._source(source)

        def handle(uow: UnitOfWork) -> UUID:
            acc = uow.load(Account, account_id, "account")
            if source_user is not None:
                uow.load(User, source_user, "source user")
            key = AnnotationKey(content, start, end, belief_time, source_name, source_user, kind)
            annotation_id, _ = acc.add_annotation(key, uow.meta)
            return annotation_id

        args = {
            "account": account_id,
            "content": content,
            "start": start,
            "end": end,
            "source_name": source_name,
            "source_user": source_user,
            "type": kind,
            "belief_time": belief_time,
        }
        return self._run(
            "add_annotation", args, handle, actor=actor, reason=reason, command_id=command_id
        )

    def remove_annotation(
        self,
        account: Any,
        annotation: Any,
        *,
        actor: Any,
        reason: Any = None,
        command_id: Any = None,
    ) -> bool:
        account_id = as_uuid(account, "account")
        annotation_id = as_uuid(annotation, "annotation")

        def handle(uow: UnitOfWork) -> bool:
            return uow.load(Account, account_id, "account").remove_annotation(
                annotation_id, uow.meta
            )

        args = {"account": account_id, "annotation": annotation_id}
        return self._run(
            "remove_annotation", args, handle, actor=actor, reason=reason, command_id=command_id
        )

    # -- look-ups for the CLI and the read API --------------------------------------------------

    def resolve_user(self, user: Any, what: str = "user") -> UUID:
        """A user given by id (a UUID, its text, or a model) or by email: every command that
        takes a user takes either. An email that no user holds is NotFound."""
        found = references.user_id(user, self.user_id_for_email, what)
        if found is None:
            raise NotFound(f"{what} {shown(user)} not found")
        return found

    def resolve_account(self, account: Any, what: str = "account") -> UUID:
        """An account given by id or by the name of an open account."""
        found = references.account_id(account, self.account_id_for_name, what)
        if found is None:
            raise NotFound(f"{what} {shown(account)} not found (among open accounts)")
        return found

    def _source(self, source: Any) -> tuple[str | None, UUID | None]:
        """A source is a name, a user (by id or model), or the email of a user: a text that
        is a user's email names that user, any other text is a source name."""
        if isinstance(source, str):
            name = valid(SourceName, source, "source")
            if "@" in name:
                with suppress(ValidationError):
                    if (found := self.user_id_for_email(name)) is not None:
                        return None, found
            return name, None
        if source is None:
            raise ValidationError("invalid source None: give a source name or a user id")
        return None, as_uuid(source, "source user")

    def user_id_for_email(self, email: str) -> UUID | None:
        """The user holding this email (case-insensitive), from the uniqueness claims."""
        as_given = self._email_key_as_given(email)
        if as_given is not None and (owner := self._key_owner(_EMAIL, as_given)) is not None:
            return owner
        key = self._claim_key(_EMAIL, valid(Email, email, "email"))
        return None if key == as_given else self._key_owner(_EMAIL, key)

    def account_id_for_name(self, name: str) -> UUID | None:
        """The open account with this name."""
        return self._claim_owner(_ACCOUNT_NAME, valid(AccountName, name, "account name"))

    def credential_version(self, user: Any) -> str | None:
        """A short fingerprint of the user's stored password hash: it changes with every new
        password (so tokens issued before stop working), None without a password."""
        row = self.side.select_one(side.SELECT_CREDENTIAL, (str(as_uuid(user, "user")),))
        if row is None:
            return None
        return hashlib.sha256(row["password_hash"].encode()).hexdigest()[:16]

    def verify_password(self, user: Any, password: str) -> bool:
        row = self.side.select_one(side.SELECT_CREDENTIAL, (str(as_uuid(user, "user")),))
        if row is None:
            return False
        try:
            return bool(self._hasher.verify(row["password_hash"], password))
        except (VerificationError, InvalidHashError):
            return False


def _encode(result: Any) -> str:
    return json.dumps(result if isinstance(result, bool) else {"id": str(result)})


def _decode(stored: str) -> Any:
    value = json.loads(stored)
    return value if isinstance(value, bool) else UUID(value["id"])


def _check_colour_pair(primary: str | None, secondary: str | None) -> None:
    if (primary is None) != (secondary is None):
        given, value = ("primary_color", primary) if primary else ("secondary_color", secondary)
        raise ValidationError(
            f"invalid {given} {shown(value)}: primary_color and secondary_color are given together "
            "or not at all"
        )


def _optional_id(value: Any, what: str) -> UUID | None:
    return None if value is None else as_uuid(value, what)
