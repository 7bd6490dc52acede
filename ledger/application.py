"""The Ledger: the command side of SPEC §4, as an eventsourcing Application.

A thin façade: each command method builds its command (`ledger.commands`), which parses and
checks its own input, and hands it to the one runner (`ledger.runner`): load, decide through
the aggregate, save the events with their side rows (claims, command id, keys, credentials) in
one transaction, retried on contention, idempotent by `command_id`.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta
from typing import Any, Final, TypeVar, cast
from uuid import UUID

from eventsourcing.application import Application, ProcessingEvent
from eventsourcing.persistence import (
    InfrastructureFactory,
    Mapper,
    Recording,
    StoredEvent,
    Transcoder,
)
from eventsourcing.utils import Environment

from ledger.batch import Batch
from ledger.commands import accounts, grants, reviews, roles, separation, sources, users
from ledger.commands.annotations import AddAnnotation, RemoveAnnotation
from ledger.commands.base import (
    UNSET,
    AccountRef,
    Command,
    Instant,
    RoleRef,
    Secret,
    Services,
    Unset,
    UserRef,
)
from ledger.domain import DEFAULT_TIMEZONE, LedgerAggregate
from ledger.errors import LedgerError, NotFound
from ledger.runner import Runner, is_contention
from ledger.storage import replay_file
from ledger.storage import side_tables as side
from ledger.storage.claims import ClaimReferences, Claims
from ledger.storage.command_log import CommandLog
from ledger.storage.credentials import Credentials
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
from ledger.storage.transcoder import FastJSONTranscoder
from ledger.validation import as_uuid, now

__all__ = ["UNSET", "Ledger", "Secret", "Unset", "is_contention"]

R = TypeVar("R")

LAST_SEEN_VARIABLE: Final = "LEDGER_LAST_SEEN_RESOLUTION"
DEFAULT_LAST_SEEN_RESOLUTION: Final = 300  # seconds

CACHE_VARIABLE: Final = "LEDGER_AGGREGATE_CACHE_MAXSIZE"
DEFAULT_CACHE_SIZE: Final = 10_000  # aggregates; about 2 KB each


def aggregate_cache_size() -> int:
    """How many aggregates each process keeps: `LEDGER_AGGREGATE_CACHE_MAXSIZE` if set."""
    size = whole_number_setting(CACHE_VARIABLE, minimum=1)
    return DEFAULT_CACHE_SIZE if size is None else size


class Ledger(Application[UUID]):
    """The write side. `Ledger(url=...)`; without a URL, `LEDGER_DATABASE_URL`, else
    `sqlite:///ledger.db`. `clock` (for imports and tests) supplies event timestamps.
    `create=False`: a database that holds no ledger is refused (NotFound), not set up.
    `read_only`: never write to the database (commands raise StorageError); by default, when
    the database cannot be written (a SQLite URL with `mode=ro`, a read-only file or folder).
    `mirror`: it records the facts of another system of record (the FlexMeasures connector),
    so a grant breaking a separation-of-duties rule is recorded, to be reported, not refused."""

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
        mirror: bool = False,
    ) -> None:
        given = database_url(url)
        replay_file.refuse(given, "it takes no commands and has no log to verify")
        self.shown_url = url_shown(given)
        self.read_only = not is_writable(given) if read_only is None else read_only
        self.url = read_only_url(given) if self.read_only else given
        create = create and not self.read_only
        if not create and not holds_ledger(self.url, side.HMAC_SECRET):
            raise NotFound(f"no ledger in {self.shown_url}: {missing_ledger(self.url)}")
        if create and is_postgres(self.url):
            connect_once(self.url)
        self._keyring = Keyring()
        self._local = threading.local()  # per thread: the open batch, the last outcome
        cache_size = str(aggregate_cache_size())
        settings = {
            "AGGREGATE_CACHE_MAXSIZE": cache_size,
            CACHE_VARIABLE: cache_size,  # eventsourcing would read the raw variable first
            "CREATE_TABLE": "y" if create else "n",
            **eventsourcing_env(self.url),
        }
        super().__init__(env=settings)
        self.side = cast(SideTableRecorder, self.recorder)
        self.credentials = Credentials(self.side)
        self._keyring.attach(self.credentials.key, self.credentials.keys, self.credentials.user_key)
        if not create and not self.read_only:
            # side tables added since the ledger was made
            cast(Any, self.recorder).create_table()
        secret = self.named_secret(side.HMAC_SECRET)
        self.claims = Claims(self.side, secret)
        resolution = whole_number_setting(LAST_SEEN_VARIABLE, minimum=0)
        self.last_seen_resolution = timedelta(
            seconds=DEFAULT_LAST_SEEN_RESOLUTION if resolution is None else resolution
        )
        self.runner = Runner(
            repository=self.repository,
            side=self.side,
            save=self.save,
            decode=self.to_domain_events,
            clock=clock or now,
            command_log=CommandLog(self.side, secret),
            services=Services(
                claims=self.claims,
                keyring=self._keyring,
                last_seen_resolution=lambda: self.last_seen_resolution,
                wipe_erased=self.wipe_erased,
                grants_ended=self._grants_ended,
                user_ids=self._user_ids,
                separation_enforced=not mirror,
            ),
            max_attempts=self.max_attempts,
        )

    def _grants_ended(self, moment: datetime) -> list[dict[str, Any]]:
        return self.side.select_all(side.SELECT_GRANTS_ENDED, (side.instant_text(moment),))

    def _user_ids(self) -> list[UUID]:
        rows = self.side.select_all(side.SELECT_USERS_NOT_ERASED, ())
        return [UUID(row["owner_id"]) for row in rows]

    def _refuse_writes(self) -> None:
        if self.read_only:
            raise StorageError(f"{self.shown_url} is open read-only: nothing was recorded")

    # -- wiring -------------------------------------------------------------------------------

    def construct_factory(self, env: Environment) -> InfrastructureFactory[Any]:
        factory = LedgerPostgresFactory if is_postgres(self.url) else LedgerSQLiteFactory
        return factory(env)

    def construct_transcoder(self) -> Transcoder:
        """The library's JSON transcoder, decoding with orjson (`ledger.storage.transcoder`)."""
        transcoder = FastJSONTranscoder()
        self.register_transcodings(transcoder)
        return transcoder

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

    def to_domain_events(
        self, stored_events: Sequence[StoredEvent], *, opened: bool = True
    ) -> list[Any]:
        """Decode stored events (notifications too), personal data decrypted, the keys they
        need looked up in one query; with `opened=False`, personal data left sealed."""
        mapper = cast(PersonalDataMapper, self.mapper)
        return mapper.to_domain_events(stored_events, opened=opened)

    def forget_cached_keys(self) -> None:
        """Drop the cached encryption keys, which a long read of the log would otherwise
        accumulate (one per user)."""
        self._keyring.clear()

    def _claim_key(self, kind: str, value: str) -> str:
        """The key a unique value is claimed under (the erasure tests look for it on disk)."""
        return self.claims.key(kind, value)

    # -- running commands -----------------------------------------------------------------------

    def _submit(self, command_type: type[Command[R]], **arguments: object) -> R:
        """Parse the command and run it: in this thread's open batch, if any."""
        self._local.recorded = False
        if arguments.get("as_user") is None:
            arguments["as_user"] = getattr(self._local, "as_user", None)
        batch: Batch | None = getattr(self._local, "batch", None)
        if batch is None:
            outcome = self.runner.run(command_type.parse(self.references(), **arguments))
        else:
            outcome = batch.run(command_type.parse(batch.references, **arguments))
        self._local.recorded = outcome.recorded
        return outcome.result

    def act_as(self, user: UserRef | None) -> None:
        """From now on, this thread's commands given no `as_user` act as `user` (None: as
        the trusted caller again). The CLI's `--as-user` sets it."""
        self._local.as_user = user

    @property
    def last_recorded(self) -> bool:
        """Whether this thread's last command recorded anything (False for a no-op, or for a
        command id applied before)."""
        return bool(getattr(self._local, "recorded", False))

    @contextmanager
    def batch(self) -> Iterator[Batch]:
        """Run commands in one transaction: each still validates against the state the earlier
        ones left, and a rejected one changes nothing; `commit()` saves them all at once.
        Until the block ends, this thread's commands on this Ledger join the batch."""
        if getattr(self._local, "batch", None) is not None:
            raise RuntimeError("batches do not nest")
        batch = Batch(self.runner, self.claims)
        self._local.batch = batch
        try:
            yield batch
        finally:
            self._local.batch = None

    def wipe_erased(self, user_id: UUID | None = None) -> None:
        """Wipe from the disk what erasures deleted (keys, claims, credentials)."""
        try:
            self.side.wipe_deleted(self.wipe_timeout)
        except WipeUnfinished as error:
            who = "the user" if user_id is None else f"user {user_id}"
            raise LedgerError(
                f"the erasure of {who} is recorded, but the deleted key and personal data are "
                f"not yet wiped from the disk: {error}; erase {who} again (it records nothing "
                "more and finishes the wipe) once those transactions have ended"
            ) from None

    # -- role catalogues ------------------------------------------------------------------------

    def define_role(
        self,
        name: str,
        description: str | None = None,
        *,
        actor: str,
        reason: str | None = None,
        command_id: str | None = None,
        as_user: UserRef | None = None,
    ) -> bool:
        return self._submit(
            roles.DefineRole,
            name=name,
            description=description,
            actor=actor,
            reason=reason,
            command_id=command_id,
            as_user=as_user,
        )

    def define_account_role(
        self,
        name: str,
        description: str | None = None,
        *,
        actor: str,
        reason: str | None = None,
        command_id: str | None = None,
        as_user: UserRef | None = None,
    ) -> bool:
        return self._submit(
            roles.DefineAccountRole,
            name=name,
            description=description,
            actor=actor,
            reason=reason,
            command_id=command_id,
            as_user=as_user,
        )

    def describe_role(
        self,
        name: str,
        description: str | None,
        *,
        actor: str,
        reason: str | None = None,
        command_id: str | None = None,
        as_user: UserRef | None = None,
    ) -> bool:
        """Give the user role `name` a new description (None: none); False if unchanged."""
        return self._submit(
            roles.DescribeRole,
            name=name,
            description=description,
            actor=actor,
            reason=reason,
            command_id=command_id,
            as_user=as_user,
        )

    def describe_account_role(
        self,
        name: str,
        description: str | None,
        *,
        actor: str,
        reason: str | None = None,
        command_id: str | None = None,
        as_user: UserRef | None = None,
    ) -> bool:
        """Give the account role `name` a new description (None: none); False if unchanged."""
        return self._submit(
            roles.DescribeAccountRole,
            name=name,
            description=description,
            actor=actor,
            reason=reason,
            command_id=command_id,
            as_user=as_user,
        )

    # -- accounts -------------------------------------------------------------------------------

    def create_account(
        self,
        name: str,
        *,
        actor: str,
        roles: Iterable[RoleRef] = (),
        consultancy_account_id: AccountRef | None = None,
        primary_color: str | None = None,
        secondary_color: str | None = None,
        logo_url: str | None = None,
        reason: str | None = None,
        command_id: str | None = None,
        as_user: UserRef | None = None,
    ) -> UUID:
        return self._submit(
            accounts.CreateAccount,
            name=name,
            actor=actor,
            roles=roles,
            consultancy_account_id=consultancy_account_id,
            primary_color=primary_color,
            secondary_color=secondary_color,
            logo_url=logo_url,
            reason=reason,
            command_id=command_id,
            as_user=as_user,
        )

    def update_account(
        self,
        account: AccountRef,
        *,
        actor: str,
        name: str | Unset = UNSET,
        primary_color: str | Unset | None = UNSET,
        secondary_color: str | Unset | None = UNSET,
        logo_url: str | Unset | None = UNSET,
        reason: str | None = None,
        command_id: str | None = None,
        as_user: UserRef | None = None,
    ) -> bool:
        return self._submit(
            accounts.UpdateAccount,
            account=account,
            actor=actor,
            name=name,
            primary_color=primary_color,
            secondary_color=secondary_color,
            logo_url=logo_url,
            reason=reason,
            command_id=command_id,
            as_user=as_user,
        )

    def grant_account_role(
        self,
        account: AccountRef,
        role: RoleRef,
        *,
        actor: str,
        until: Instant | None = None,
        exception_approved_by: str | UserRef | None = None,
        reason: str | None = None,
        command_id: str | None = None,
        as_user: UserRef | None = None,
    ) -> bool:
        """Grant an account role, until revoked or until `until` (an aware instant in the
        future), when it ends by itself. A grant that breaks a separation-of-duties rule is a
        Conflict, unless `exception_approved_by` (a user, or an actor) and a reason are given."""
        return self._submit(
            accounts.GrantAccountRole,
            account=account,
            role=role,
            actor=actor,
            until=until,
            exception_approved_by=exception_approved_by,
            reason=reason,
            command_id=command_id,
            as_user=as_user,
        )

    def revoke_account_role(
        self,
        account: AccountRef,
        role: RoleRef,
        *,
        actor: str,
        reason: str | None = None,
        command_id: str | None = None,
        as_user: UserRef | None = None,
    ) -> bool:
        return self._submit(
            accounts.RevokeAccountRole,
            account=account,
            role=role,
            actor=actor,
            reason=reason,
            command_id=command_id,
            as_user=as_user,
        )

    def set_consultancy(
        self,
        account: AccountRef,
        consultancy_account_id: AccountRef | None,
        *,
        actor: str,
        reason: str | None = None,
        command_id: str | None = None,
        as_user: UserRef | None = None,
    ) -> bool:
        return self._submit(
            accounts.SetConsultancy,
            account=account,
            consultancy_account_id=consultancy_account_id,
            actor=actor,
            reason=reason,
            command_id=command_id,
            as_user=as_user,
        )

    def close_account(
        self,
        account: AccountRef,
        *,
        actor: str,
        reason: str | None = None,
        command_id: str | None = None,
        as_user: UserRef | None = None,
    ) -> bool:
        return self._submit(
            accounts.CloseAccount,
            account=account,
            actor=actor,
            reason=reason,
            command_id=command_id,
            as_user=as_user,
        )

    # -- users ----------------------------------------------------------------------------------

    def create_user(
        self,
        email: str,
        *,
        account_id: AccountRef,
        actor: str,
        username: str | None = None,
        timezone: str = DEFAULT_TIMEZONE,
        roles: Iterable[RoleRef] = (),
        password: str | None = None,
        reason: str | None = None,
        command_id: str | None = None,
        as_user: UserRef | None = None,
    ) -> UUID:
        return self._submit(
            users.CreateUser,
            email=email,
            account_id=account_id,
            actor=actor,
            username=username,
            timezone=timezone,
            roles=roles,
            password=password,
            reason=reason,
            command_id=command_id,
            as_user=as_user,
        )

    def update_user(
        self,
        user: UserRef,
        *,
        actor: str,
        email: str | Unset = UNSET,
        username: str | Unset = UNSET,
        timezone: str | Unset = UNSET,
        reason: str | None = None,
        command_id: str | None = None,
        as_user: UserRef | None = None,
    ) -> bool:
        return self._submit(
            users.UpdateUser,
            user=user,
            actor=actor,
            email=email,
            username=username,
            timezone=timezone,
            reason=reason,
            command_id=command_id,
            as_user=as_user,
        )

    def move_user(
        self,
        user: UserRef,
        account_id: AccountRef,
        *,
        actor: str,
        reason: str | None = None,
        command_id: str | None = None,
        as_user: UserRef | None = None,
    ) -> bool:
        """Move a user to another open account (its roles and activity stay as they are);
        False if the user is in that account already."""
        return self._submit(
            users.MoveUser,
            user=user,
            account_id=account_id,
            actor=actor,
            reason=reason,
            command_id=command_id,
            as_user=as_user,
        )

    def grant_role(
        self,
        user: UserRef,
        role: RoleRef,
        *,
        actor: str,
        until: Instant | None = None,
        exception_approved_by: str | UserRef | None = None,
        reason: str | None = None,
        command_id: str | None = None,
        as_user: UserRef | None = None,
    ) -> bool:
        """Grant a user role, until revoked or until `until` (an aware instant in the future),
        when it ends by itself. A grant that breaks a separation-of-duties rule is a Conflict,
        unless `exception_approved_by` (a user, or an actor) and a reason are given."""
        return self._submit(
            users.GrantRole,
            user=user,
            role=role,
            actor=actor,
            until=until,
            exception_approved_by=exception_approved_by,
            reason=reason,
            command_id=command_id,
            as_user=as_user,
        )

    def revoke_role(
        self,
        user: UserRef,
        role: RoleRef,
        *,
        actor: str,
        reason: str | None = None,
        command_id: str | None = None,
        as_user: UserRef | None = None,
    ) -> bool:
        return self._submit(
            users.RevokeRole,
            user=user,
            role=role,
            actor=actor,
            reason=reason,
            command_id=command_id,
            as_user=as_user,
        )

    def deactivate_user(
        self,
        user: UserRef,
        *,
        actor: str,
        reason: str | None = None,
        command_id: str | None = None,
        as_user: UserRef | None = None,
    ) -> bool:
        return self._submit(
            users.DeactivateUser,
            user=user,
            actor=actor,
            reason=reason,
            command_id=command_id,
            as_user=as_user,
        )

    def reactivate_user(
        self,
        user: UserRef,
        *,
        actor: str,
        reason: str | None = None,
        command_id: str | None = None,
        as_user: UserRef | None = None,
    ) -> bool:
        return self._submit(
            users.ReactivateUser,
            user=user,
            actor=actor,
            reason=reason,
            command_id=command_id,
            as_user=as_user,
        )

    def record_login(
        self,
        user: UserRef,
        *,
        at: Instant | None = None,
        ip: str | None = None,
        command_id: str | None = None,
        as_user: UserRef | None = None,
    ) -> bool:
        return self._submit(
            users.RecordLogin, user=user, at=at, ip=ip, command_id=command_id, as_user=as_user
        )

    def record_failed_login(
        self,
        user: UserRef,
        *,
        at: Instant | None = None,
        ip: str | None = None,
        reason_kind: str,
        command_id: str | None = None,
        as_user: UserRef | None = None,
    ) -> bool:
        """A failed attempt to log in as `user`, a security event: `reason_kind` says why
        (wrong-password, no-password, inactive, erased, account-closed). The actor is
        `unauthenticated`, as the attempt proves no one's identity; the client address goes
        in `ip`, sealed as personal data, never in the actor."""
        return self._submit(
            users.RecordFailedLogin,
            user=user,
            at=at,
            ip=ip,
            reason_kind=reason_kind,
            command_id=command_id,
            as_user=as_user,
        )

    def record_last_seen(
        self,
        user: UserRef,
        *,
        at: Instant | None = None,
        command_id: str | None = None,
        as_user: UserRef | None = None,
    ) -> bool:
        return self._submit(
            users.RecordLastSeen, user=user, at=at, command_id=command_id, as_user=as_user
        )

    def set_password(
        self,
        user: UserRef,
        password: str,
        *,
        actor: str,
        reason: str | None = None,
        command_id: str | None = None,
        as_user: UserRef | None = None,
    ) -> bool:
        return self._submit(
            users.SetPassword,
            user=user,
            password=password,
            actor=actor,
            reason=reason,
            command_id=command_id,
            as_user=as_user,
        )

    def erase_user(
        self,
        user: UserRef,
        *,
        actor: str,
        reason: str,
        command_id: str | None = None,
        as_user: UserRef | None = None,
    ) -> bool:
        """Delete the user's key, claims and credential, record UserErased, and wipe what the
        deleted rows held from the disk before returning. Erasing an erased user records
        nothing and returns False, but still finishes a wipe that was cut short."""
        return self._submit(
            users.EraseUser,
            user=user,
            actor=actor,
            reason=reason,
            command_id=command_id,
            as_user=as_user,
        )

    # -- time-limited grants -------------------------------------------------------------------

    def extend_grant(
        self,
        user_or_account: UserRef | AccountRef,
        role: RoleRef,
        until: Instant,
        *,
        actor: str,
        reason: str | None = None,
        command_id: str | None = None,
        as_user: UserRef | None = None,
    ) -> bool:
        """Move the end of a grant that the user or account holds to `until` (in the future,
        later or earlier); False if it ends then already; NotFound if no such grant is held."""
        return self._submit(
            grants.ExtendGrant,
            user_or_account=user_or_account,
            role=role,
            until=until,
            actor=actor,
            reason=reason,
            command_id=command_id,
            as_user=as_user,
        )

    def expire_grants(
        self,
        *,
        actor: str,
        reason: str | None = None,
        command_id: str | None = None,
        as_user: UserRef | None = None,
    ) -> int:
        """Record a RoleExpired (AccountRoleExpired) event for each grant whose end has passed,
        once; return how many. Queries treat such grants as ended at their end without it."""
        return self._submit(
            grants.ExpireGrants, actor=actor, reason=reason, command_id=command_id, as_user=as_user
        )

    # -- separation of duties ------------------------------------------------------------------

    def define_sod_rule(
        self,
        name: str,
        roles: Iterable[RoleRef],
        scope: str = "user",
        *,
        actor: str,
        reason: str | None = None,
        command_id: str | None = None,
        as_user: UserRef | None = None,
    ) -> bool:
        """No one user (scope "user") or account (scope "account") may hold both of `roles`
        (two role names of that catalogue): a grant that would break it is a Conflict."""
        return self._submit(
            separation.DefineSodRule,
            name=name,
            roles=roles,
            scope=scope,
            actor=actor,
            reason=reason,
            command_id=command_id,
            as_user=as_user,
        )

    def remove_sod_rule(
        self,
        name: str,
        *,
        actor: str,
        reason: str | None = None,
        command_id: str | None = None,
        as_user: UserRef | None = None,
    ) -> bool:
        return self._submit(
            separation.RemoveSodRule,
            name=name,
            actor=actor,
            reason=reason,
            command_id=command_id,
            as_user=as_user,
        )

    # -- access-review campaigns ---------------------------------------------------------------

    def start_review(
        self,
        name: str,
        *,
        scope: Mapping[str, Iterable[Any]],
        reviewer: UserRef,
        due: Instant,
        actor: str,
        reason: str | None = None,
        command_id: str | None = None,
        as_user: UserRef | None = None,
    ) -> UUID:
        """Start access-review campaign `name` and return its id. `scope`: `{"accounts":
        [account, ...]}` (by id or name) or `{"roles": [role, ...]}`; each grant of a user role
        held now by an active user in scope becomes an item (`NAME#1`, `NAME#2`, ...) for
        `reviewer` (a user, by id or email) to decide by `due` (in the future)."""
        return self._submit(
            reviews.StartReview,
            name=name,
            scope=scope,
            reviewer=reviewer,
            due=due,
            actor=actor,
            reason=reason,
            command_id=command_id,
            as_user=as_user,
        )

    def certify(
        self,
        item: str,
        *,
        reviewer: UserRef,
        reason: str,
        actor: str,
        command_id: str | None = None,
        as_user: UserRef | None = None,
    ) -> bool:
        """The campaign's reviewer certifies that the item's user keeps its role."""
        return self._submit(
            reviews.Certify,
            item=item,
            reviewer=reviewer,
            reason=reason,
            actor=actor,
            command_id=command_id,
            as_user=as_user,
        )

    def revoke_via_review(
        self,
        item: str,
        *,
        reviewer: UserRef,
        reason: str,
        actor: str,
        command_id: str | None = None,
        as_user: UserRef | None = None,
    ) -> bool:
        """The campaign's reviewer revokes the item's role: the decision and the revocation
        (its reason naming the campaign) are recorded in one transaction."""
        return self._submit(
            reviews.RevokeViaReview,
            item=item,
            reviewer=reviewer,
            reason=reason,
            actor=actor,
            command_id=command_id,
            as_user=as_user,
        )

    def close_review(
        self,
        name: str,
        *,
        actor: str,
        reason: str | None = None,
        command_id: str | None = None,
        as_user: UserRef | None = None,
    ) -> bool:
        """Close the campaign, recording its outcome; False if it is closed already."""
        return self._submit(
            reviews.CloseReview,
            name=name,
            actor=actor,
            reason=reason,
            command_id=command_id,
            as_user=as_user,
        )

    # -- annotations ----------------------------------------------------------------------------

    def add_annotation(
        self,
        account: AccountRef,
        *,
        content: str,
        start: Instant,
        end: Instant,
        source: str | UserRef,
        type: str = "label",
        belief_time: Instant | None = None,
        actor: str,
        reason: str | None = None,
        command_id: str | None = None,
        as_user: UserRef | None = None,
    ) -> UUID:
        return self._submit(
            AddAnnotation,
            account=account,
            content=content,
            start=start,
            end=end,
            source=source,
            type=type,
            belief_time=belief_time,
            actor=actor,
            reason=reason,
            command_id=command_id,
            as_user=as_user,
        )

    def record_unrecognised_entry(
        self,
        source: str,
        entry_id: int,
        text: str,
        at: Instant,
        *,
        user: UserRef | None = None,
        account: AccountRef | None = None,
        actor: str,
        reason: str | None = None,
        command_id: str | None = None,
        as_user: UserRef | None = None,
    ) -> bool:
        """Keep an audit entry of a mirrored system (`source`) that the ledger could not
        interpret, with its text and time; the same entry twice records nothing."""
        return self._submit(
            sources.RecordUnrecognisedEntry,
            source=source,
            entry_id=entry_id,
            text=text,
            at=at,
            user=user,
            account=account,
            actor=actor,
            reason=reason,
            command_id=command_id,
            as_user=as_user,
        )

    def remove_annotation(
        self,
        account: AccountRef,
        annotation: UUID | str,
        *,
        actor: str,
        reason: str | None = None,
        command_id: str | None = None,
        as_user: UserRef | None = None,
    ) -> bool:
        return self._submit(
            RemoveAnnotation,
            account=account,
            annotation=annotation,
            actor=actor,
            reason=reason,
            command_id=command_id,
            as_user=as_user,
        )

    # -- look-ups for the CLI and the read API --------------------------------------------------

    def resolve_user(self, user: object, what: str = "user") -> UUID:
        """A user given by id (a UUID, its text, or a model) or by email: every command that
        takes a user takes either. An email that no user holds is NotFound."""
        return self.references().resolve_user(user, what)

    def resolve_account(self, account: object, what: str = "account") -> UUID:
        """An account given by id or by the name of an open account."""
        return self.references().resolve_account(account, what)

    def user_id_for_email(self, email: str) -> UUID | None:
        """The user holding this email (case-insensitive), from the uniqueness claims."""
        return self.references().user_id_for_email(email)

    def account_id_for_name(self, name: str) -> UUID | None:
        """The open account with this name."""
        return self.references().account_id_for_name(name)

    def references(self) -> ClaimReferences:
        """Look-ups of users and accounts as this thread's open batch (if any) leaves them."""
        batch: Batch | None = getattr(self._local, "batch", None)
        return ClaimReferences(self.claims) if batch is None else batch.references

    def credential_version(self, user: UserRef) -> str | None:
        """A short fingerprint of the user's stored password hash: it changes with every new
        password (so tokens issued before stop working), None without a password."""
        return self.credentials.version(as_uuid(user, "user"))

    def verify_password(self, user: UserRef, password: str) -> bool:
        return self.credentials.verify(as_uuid(user, "user"), password)
