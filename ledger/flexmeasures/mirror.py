"""Mirroring a FlexMeasures database into the ledger: `Mirror.sync()` records what happened
since the last sync, in two steps.

1. History: each new `audit_log` row that says what changed becomes that change, at the row's
   `event_datetime`, by `flexmeasures:<active user id>`, its row id kept in the reason. Logins
   (FlexMeasures keeps only a count and the last time) take their place in that timeline at
   `last_login_at`. Rows it cannot interpret are kept as "unrecognised" entries.
2. Reconciliation: the tables are compared with the ledger's state; whatever differs, no row
   having explained it, is recorded as observed now by `flexmeasures:import`.

Each chunk of changes is saved in one transaction together with the cursor it reached (the last
audit row, and digests of the tables once reconciled) and the FlexMeasures ids of what it created,
so a sync killed at any instant resumes where it stopped, and a second sync records nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, TypeVar, cast
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from ledger.application import Ledger
from ledger.batch import Batch
from ledger.domain import Account, AccountRole, ExternalSource, Role, User
from ledger.errors import LedgerError
from ledger.flexmeasures import source as fm
from ledger.flexmeasures.history import (
    Change,
    about_an_account,
    interpret,
    roles_held_at_creation,
)
from ledger.storage import side_tables as side
from ledger.storage.claims import ACCOUNT_NAME, USERNAME
from ledger.validation import now

IMPORT_ACTOR: Final = "flexmeasures:import"
OBSERVED: Final = "observed at import: no FlexMeasures audit entry explains it"
CHUNK: Final = 2_000  # changes per transaction


class ImportClock:
    """The time the ledger gives the events it records: a row's own time while its change is
    recorded, else now."""

    def __init__(self) -> None:
        self.at: datetime | None = None

    def __call__(self) -> datetime:
        return self.at or now()

    @contextmanager
    def set_to(self, moment: datetime | None) -> Iterator[None]:
        self.at = moment
        try:
            yield
        finally:
            self.at = None


@dataclass(frozen=True)
class Cursor:
    last_entry_id: int
    fingerprints: dict[str, str]
    synced_at: str
    polled_at: str


@dataclass
class SyncReport:
    rows: int = 0
    recorded: int = 0
    unrecognised: int = 0
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _LoginCatchUp:
    user_id: int


Step = tuple[datetime, int, Change | _LoginCatchUp]
Row = TypeVar("Row")


def _changed(current: dict[int, Row], before: dict[int, Row] | None) -> list[Row]:
    """The rows that are new or differ from `before` (all of them without it)."""
    if before is None:
        return list(current.values())
    return [row for key, row in current.items() if before.get(key) != row]


def actor_of(row: fm.AuditRow) -> str:
    """`flexmeasures:<user id>` when a FlexMeasures user acted: an id, never the user's name,
    which is personal data that erasure could not reach in an actor; else the name FlexMeasures
    gave the non-user that acted (its CLI, a script), or `system`."""
    if row.active_user_id is not None:
        return f"flexmeasures:{row.active_user_id}"
    who = row.active_user_name or "system"
    shown = "".join(c if c.isprintable() else "?" for c in who)
    return f"flexmeasures:{shown.strip()[:200] or 'system'}"


def reason_of(row: fm.AuditRow) -> str:
    return f"FlexMeasures audit_log row {row.id}"


class Mirror:
    """Mirrors the FlexMeasures database at `source_url` into the ledger at `ledger_url`."""

    def __init__(self, ledger_url: str | None, source_url: str) -> None:
        self.database = fm.FlexMeasuresDatabase(source_url)
        self.source = self.database.name
        self.clock = ImportClock()
        self.ledger = Ledger(ledger_url, clock=self.clock, mirror=True)
        self.ids: dict[tuple[str, int], UUID] = {}
        self.fm_user_of: dict[UUID, int] = {}  # the reverse of self.ids' users
        self.snapshot = fm.Snapshot()
        self.report = SyncReport()
        self._batch: Batch | None = None
        # the snapshot the last sync of this process reconciled: the next one compares only
        # the rows changed since (a new process compares them all once)
        self._previous: fm.Snapshot | None = None
        self.creation_roles: dict[int, set[str]] = {}
        # accounts deleted in FlexMeasures, closed once the last row naming them is replayed:
        # audit_log row id -> FlexMeasures account id
        self.closing_after: dict[int, int] = {}

    def close(self) -> None:
        self.database.close()
        self.ledger.close()

    # -- what the ledger holds of this source ---------------------------------------------------

    def cursor(self) -> Cursor | None:
        row = self.ledger.side.select_one(side.SELECT_CURSOR, (self.source,))
        if row is None:
            return None
        return Cursor(
            int(row["last_entry_id"]),
            json.loads(row["fingerprints"]),
            row["synced_at"],
            row["polled_at"],
        )

    def mirrored_ids(self) -> dict[tuple[str, int], UUID]:
        rows = self.ledger.side.select_all(side.SELECT_MIRRORED_IDS, (self.source,))
        return {(r["kind"], int(r["external_id"])): UUID(r["ledger_id"]) for r in rows}

    def unrecognised_entries(self) -> set[int]:
        try:
            found: ExternalSource = self.ledger.repository.get(ExternalSource.id_for(self.source))
        except AggregateNotFoundError:  # never kept one
            return set()
        return set(found.recorded_entries)

    def status(self) -> dict[str, Any]:
        """What is mirrored of each kind beside what FlexMeasures holds now, the FlexMeasures
        users the ledger could not take, the cursor, and the audit_log rows kept as
        unrecognised (with their text)."""
        counts = self.database.counts()
        mirrored = self.mirrored_ids()
        living = {"users": self.database.user_ids(), "accounts": self.database.account_ids()}
        present = {
            "users": {i for k, i in mirrored if k == "user"},
            "accounts": {i for k, i in mirrored if k == "account"},
            "annotations": {i for k, i in mirrored if k == "annotation"},
        }
        kinds: dict[str, dict[str, int]] = {}
        for kind, ids in present.items():
            kinds[kind] = {"mirrored": len(ids), "in_flexmeasures": counts[kind]}
            if kind in living:
                # the stand-ins of users (accounts) FlexMeasures deleted, erased (closed) here
                gone = len(ids - living[kind])
                kinds[kind].update(mirrored=len(ids) - gone, deleted_in_flexmeasures=gone)
        for kind, cls, names in (
            ("roles", Role, self.database.names("role")),
            ("account_roles", AccountRole, self.database.names("account_role")),
        ):
            defined = sum(1 for name in names if self._defined(cls, name))
            kinds[kind] = {"mirrored": defined, "in_flexmeasures": len(names)}
        cursor = self.cursor()
        unrecognised = sorted(self.unrecognised_entries())
        return {
            "source": self.source,
            "kinds": kinds,
            "last_audit_log_id": self.database.last_audit_id(),
            "cursor": None
            if cursor is None
            else {
                "last_audit_log_id": cursor.last_entry_id,
                "synced_at": cursor.synced_at,
                "polled_at": cursor.polled_at,
            },
            "unrecognised": self.database.audit_texts(unrecognised),
            "users_not_mirrored": sorted(living["users"] - present["users"]),
        }

    def _defined(self, cls: type[Role | AccountRole], name: str) -> bool:
        try:
            self.ledger.repository.get(cls.id_for(name))
        except AggregateNotFoundError:
            return False
        return True

    # -- one sync -------------------------------------------------------------------------------

    def sync(self) -> SyncReport:
        """Record what changed in FlexMeasures since the last sync (everything, the first
        time). Returns what it did; records nothing when nothing changed. A sync that fails
        (say, another writer got in the way) leaves the ledger at its last saved chunk; the
        next one compares every row again."""
        try:
            return self._sync()
        except BaseException:
            self._previous = None
            raise

    def _sync(self) -> SyncReport:
        self.report = SyncReport()
        cursor = self.cursor()
        polled_at = now().isoformat()
        if cursor is not None and self._unchanged(cursor):
            self.ledger.side.write_side([side.put_polled_at(self.source, polled_at)])
            return self.report
        after = 0 if cursor is None else cursor.last_entry_id
        old_fingerprints = {} if cursor is None else cursor.fingerprints
        self.snapshot = self.database.snapshot(after)
        self.ids = self.mirrored_ids()
        self.fm_user_of = {
            ledger: key for (kind, key), ledger in self.ids.items() if kind == "user"
        }
        changes = [change for row in self.snapshot.audit_rows for change in interpret(row)]
        self.report.rows = len(self.snapshot.audit_rows)
        self.creation_roles = roles_held_at_creation(changes)
        timeline = self._timeline(changes)
        self.closing_after = self._last_rows_of_gone_accounts(timeline)
        last_entry = after
        for start in range(0, len(timeline), CHUNK):
            with self._transaction() as batch:
                self._preload(timeline[start : start + CHUNK])
                for _, _, step in timeline[start : start + CHUNK]:
                    if isinstance(step, Change):
                        self._apply(step)
                        self._close_if_gone(step)
                        last_entry = step.row.id
                    else:
                        self._catch_up_logins(step.user_id)
                fingerprints = json.dumps(old_fingerprints, sort_keys=True)
                batch.uow.write(
                    side.put_cursor(self.source, last_entry, fingerprints, polled_at, polled_at)
                )
        with self._transaction() as batch:
            self._reconcile()
            fingerprints = json.dumps(self.snapshot.fingerprints, sort_keys=True)
            batch.uow.write(
                side.put_cursor(self.source, last_entry, fingerprints, now().isoformat(), polled_at)
            )
        self._previous = self.snapshot
        return self.report

    def _preload(self, steps: list[Step]) -> None:
        """Load the users, accounts and roles a chunk of history names, and who holds the
        emails, usernames and account names it may create, in a few queries, not one each (on
        PostgreSQL, those round trips were most of an import)."""
        wanted: list[UUID] = []
        emails: list[str] = []
        usernames: list[str] = []
        account_names: list[str] = []
        for _, _, step in steps:
            named: list[tuple[str, int | None]]
            if isinstance(step, _LoginCatchUp):
                named = [("user", step.user_id)]
            else:
                named = [
                    ("user", step.row.affected_user_id),
                    ("account", step.row.affected_account_id),
                ]
                wanted.extend(Role.id_for(role) for role in step.roles)
            for kind, key in named:
                if key is None:
                    continue
                if (found := self.ids.get((kind, key))) is not None:
                    wanted.append(found)
                elif kind == "user" and (user := self.snapshot.users.get(key)) is not None:
                    emails.append(user.email)
                    usernames.append(user.username)
                elif kind == "account" and (account := self.snapshot.accounts.get(key)):
                    account_names.append(account.name)
            if isinstance(step, Change) and step.name:  # a deleted user's or account's name
                (account_names if step.kind == "account-created" else usernames).append(step.name)
        self.batch.preload(wanted)
        self.batch.prefetch_claims(emails, usernames, account_names)

    def _last_rows_of_gone_accounts(self, timeline: list[Step]) -> dict[int, int]:
        """For each account gone from FlexMeasures' table that rows of this sync name, the
        last of those rows (FlexMeasures writes none when it deletes an account, but deletes
        its users first, each with a row naming it)."""
        last: dict[int, int] = {}
        for _, _, step in timeline:
            if not isinstance(step, Change):
                continue
            named = step.row.affected_account_id
            if step.kind == "account-created":
                named = step.account_id
            if named is not None and named not in self.snapshot.accounts:
                last[named] = step.row.id
        return {row_id: account_id for account_id, row_id in last.items()}

    def _close_if_gone(self, change: Change) -> None:
        account_id = self.closing_after.get(change.row.id)
        ledger_id = None if account_id is None else self.ids.get(("account", account_id))
        if account_id is None or ledger_id is None:
            return
        if self.batch.uow.load(Account, ledger_id, "account").closed:
            return
        reason = (
            f"deleted in FlexMeasures since (gone from its account table): closed at the last "
            f"audit_log row naming it, row {change.row.id}"
        )
        with self.clock.set_to(change.row.at):
            self._move_out_who_left(ledger_id, account_id)
            self._run(self.ledger.close_account, ledger_id, actor=IMPORT_ACTOR, reason=reason)

    def _move_out_who_left(self, ledger_id: UUID, account_id: int) -> None:
        """Move the members of an account about to close whom FlexMeasures has in another
        account now (no row says when they moved): closing would deactivate them."""
        members = self.batch.uow.load(Account, ledger_id, "account").members
        for member in sorted(members):
            user_id = self.fm_user_of.get(member)
            user = None if user_id is None else self.snapshot.users.get(user_id)
            if user is None or user.account_id == account_id:
                continue
            target = self._account(user.account_id, IMPORT_ACTOR, OBSERVED)
            if target is not None:
                self._run(
                    self.ledger.move_user, member, target, actor=IMPORT_ACTOR, reason=OBSERVED
                )

    def _unchanged(self, cursor: Cursor) -> bool:
        return (
            self.database.last_audit_id() <= cursor.last_entry_id
            and self.database.fingerprints() == cursor.fingerprints
        )

    def _timeline(
        self, changes: list[Change]
    ) -> list[tuple[datetime, int, Change | _LoginCatchUp]]:
        steps: list[tuple[datetime, int, Change | _LoginCatchUp]] = [
            (change.row.at, change.row.id, change) for change in changes
        ]
        for user in self.snapshot.users.values():
            if user.login_count and user.last_login_at is not None:
                steps.append((user.last_login_at, -1, _LoginCatchUp(user.id)))
        steps.sort(key=lambda step: (step[0], step[1]))
        return steps

    @contextmanager
    def _transaction(self) -> Iterator[Batch]:
        with self.ledger.batch() as batch:
            self._batch = batch
            try:
                yield batch
                batch.commit()
            finally:
                self._batch = None

    @property
    def batch(self) -> Batch:
        assert self._batch is not None
        return self._batch

    def _run(self, command: Any, *args: Any, failing: str = "", **kwargs: Any) -> Any:
        """Run a Ledger command in the open batch; a rejection is reported (after `failing`),
        not fatal."""
        try:
            result = command(*args, **kwargs)
        except LedgerError as error:
            self._problem(f"{failing}{error}")
            return None
        if self.ledger.last_recorded:
            self.report.recorded += 1
        return result

    def _map(self, kind: str, external_id: int, ledger_id: UUID) -> None:
        self.ids[(kind, external_id)] = ledger_id
        if kind == "user":
            self.fm_user_of[ledger_id] = external_id
        self.batch.uow.write(side.map_id(self.source, kind, external_id, ledger_id))

    # -- history --------------------------------------------------------------------------------

    def _apply(self, change: Change) -> None:
        row = change.row
        actor, reason = actor_of(row), reason_of(row)
        with self.clock.set_to(row.at):
            if change.kind == "account-created":
                created = self._account(change.account_id, actor, reason)
                if created is None and change.account_id not in self.snapshot.accounts:
                    created = self._deleted_account(change, actor, reason)
                if created is None:
                    self._keep(change, None, actor, reason)
                return
            if change.kind == "user-created":
                living = row.affected_user_id in self.snapshot.users
                # a living user the ledger refused stays unmirrored (reported): only a user
                # gone from fm_user is created under a stand-in, to be erased
                created = self._user(
                    row.affected_user_id, actor, reason, created_in=row.affected_account_id
                )
                if created is None and not living:
                    self._deleted_user(change, actor, reason)
                return
            if change.kind == "user-deleted":
                self._erase_deleted(change, actor, reason)
                return
            if change.kind == "unrecognised" and about_an_account(row):
                # never sealed with the key of the user it names (the acting admin, for an
                # "Account Updated" row): erasing them must not erase the account's record
                self._keep(change, None, actor, reason)
                return
            user = self._user(row.affected_user_id, actor, reason)
            if user is None or change.kind == "unrecognised":
                self._keep(change, user, actor, reason)
                return
            if change.kind == "deactivated":
                self._run(self.ledger.deactivate_user, user, actor=actor, reason=reason)
            elif change.kind == "activated":
                self._run(self.ledger.reactivate_user, user, actor=actor, reason=reason)
            else:
                grants = change.kind == "roles-added"
                command = self.ledger.grant_role if grants else self.ledger.revoke_role
                for role in change.roles:
                    self._role(Role, role, self._description(Role, role))
                    self._run(command, user, role, actor=actor, reason=reason)

    def _keep(self, change: Change, user: UUID | None, actor: str, reason: str) -> None:
        row = change.row
        account = None
        if row.affected_account_id is not None:
            account = self.ids.get(("account", row.affected_account_id))
        self._run(
            self.ledger.record_unrecognised_entry,
            self.source,
            row.id,
            row.event,
            row.at,
            user=user,
            account=account,
            actor=actor,
            reason=reason,
        )
        self.report.unrecognised += 1

    def _role(self, cls: type[Role | AccountRole], name: str, description: str | None) -> None:
        """Define the role, with FlexMeasures' description if the ledger takes it, else without
        one (the refused description reported): a role is never lost, nor its grants, for its
        description."""
        if self.batch.uow.exists(cls, cls.id_for(name)):
            return
        define = self.ledger.define_role if cls is Role else self.ledger.define_account_role
        if description is not None:
            try:
                define(name, description, actor=IMPORT_ACTOR, reason=OBSERVED)
            except LedgerError as error:
                self._problem(f"{cls.__name__} {name!r}: description not mirrored: {error}")
            else:
                if self.ledger.last_recorded:
                    self.report.recorded += 1
                return
        self._run(define, name, None, actor=IMPORT_ACTOR, reason=OBSERVED)

    def _problem(self, problem: str) -> None:
        if problem not in self.report.problems:  # a user refused in history is again later
            self.report.problems.append(problem)

    def _description(self, cls: type[Role | AccountRole], name: str) -> str | None:
        """The role's description in FlexMeasures now (None if it is gone from there)."""
        catalogue = self.snapshot.roles if cls is Role else self.snapshot.account_roles
        found = catalogue.get(name)
        return None if found is None else found.description

    def _describe(self, cls: type[Role | AccountRole], name: str, description: str | None) -> None:
        """Give a defined role the description FlexMeasures gives it (no row says when it
        changed there: it is recorded as observed)."""
        if not self.batch.uow.exists(cls, cls.id_for(name)):
            return  # the ledger refused to define it (reported)
        held = self.batch.uow.load(cls, cls.id_for(name), cls.__name__)
        if held.description == description:
            return
        describe = self.ledger.describe_role if cls is Role else self.ledger.describe_account_role
        self._run(
            describe,
            name,
            description,
            actor=IMPORT_ACTOR,
            reason=OBSERVED,
            failing=f"{cls.__name__} {name!r}: description not mirrored: ",
        )

    def _account(self, account_id: int | None, actor: str, reason: str) -> UUID | None:
        if account_id is None:
            return None
        found = self.ids.get(("account", account_id))
        if found is not None:
            return found
        account = self.snapshot.accounts.get(account_id)
        if account is None:
            return None
        colours: dict[str, str] = {}
        if account.primary_color and account.secondary_color:
            colours = {
                "primary_color": account.primary_color,
                "secondary_color": account.secondary_color,
            }
        created = self._run(
            self.ledger.create_account,
            account.name,
            actor=actor,
            reason=reason,
            logo_url=account.logo_url or None,
            **colours,
        )
        if created is not None:
            self._map("account", account_id, created)
        return cast(UUID | None, created)

    def _deleted_account(self, change: Change, actor: str, reason: str) -> UUID | None:
        """An account FlexMeasures deleted since, known only from its rows: created under the
        name its creation row gives (another if an open account holds that one now), to be
        closed at the last row naming it."""
        if change.account_id is None or not change.name:
            return None
        name = change.name
        if self.ledger.claims.owner(ACCOUNT_NAME, name, self.batch.uow) is not None:
            name = f"{name} (FlexMeasures audit_log row {change.row.id})"
        created = self._run(
            self.ledger.create_account,
            name,
            actor=actor,
            reason=f"{reason}; deleted in FlexMeasures since",
            failing=f"FlexMeasures account {change.account_id} (deleted there) not mirrored: ",
        )
        if created is not None:
            self._map("account", change.account_id, created)
        return cast(UUID | None, created)

    def _user(
        self, user_id: int | None, actor: str, reason: str, created_in: int | None = None
    ) -> UUID | None:
        """The user's ledger id, creating the user first if need be: in `created_in`, the
        account its creation row names, when that is known here (the move to its account now
        is then reconciled as observed), else in its account now."""
        if user_id is None:
            return None
        found = self.ids.get(("user", user_id))
        if found is not None:
            return found
        user = self.snapshot.users.get(user_id)
        if user is None:
            return None
        account = None
        if created_in is not None and created_in != user.account_id:
            account = self._open_account(created_in)
        if account is None:
            account = self._account(user.account_id, IMPORT_ACTOR, OBSERVED)
        if account is None:
            return None
        roles = sorted(self.creation_roles.get(user_id, ()))
        for role in roles:
            self._role(Role, role, self._description(Role, role))
        created = self._run(
            self.ledger.create_user,
            user.email,
            account_id=account,
            username=user.username,
            timezone=user.timezone,
            roles=roles,
            actor=actor,
            reason=reason,
            failing=f"FlexMeasures user {user_id} not mirrored: ",
        )
        if created is not None:
            self._map("user", user_id, created)
        return cast(UUID | None, created)

    def _open_account(self, account_id: int) -> UUID | None:
        """The ledger id of a FlexMeasures account still there, or deleted there and mirrored
        from its rows and not closed yet; else None."""
        if account_id in self.snapshot.accounts:
            found = self._account(account_id, IMPORT_ACTOR, OBSERVED)
        else:
            found = self.ids.get(("account", account_id))
        if found is None or self.batch.uow.load(Account, found, "account").closed:
            return None
        return found

    def _deleted_user(self, change: Change, actor: str, reason: str) -> UUID | None:
        """A user FlexMeasures deleted since: only its username and account id survive there
        (no email), so it is created under a stand-in email, in that account (also when that
        was deleted too and is mirrored from its rows; else in its creator's, else in
        FlexMeasures' first), to be erased when its deletion is replayed."""
        row = change.row
        creator = self.snapshot.users.get(row.active_user_id or -1)
        candidates: list[int | None] = [
            row.affected_account_id,
            None if creator is None else creator.account_id,
            *sorted(self.snapshot.accounts),
        ]
        account = None
        for candidate in candidates:
            if candidate is None:
                continue
            if candidate in self.snapshot.accounts:
                account = self._account(candidate, IMPORT_ACTOR, OBSERVED)
                break
            if (account := self._open_account(candidate)) is not None:
                break
        if account is None or not change.name:
            self._keep(change, None, actor, reason)
            return None
        username = change.name
        if self.ledger.claims.owner(USERNAME, username, self.batch.uow) is not None:
            username = f"{username} (FlexMeasures audit_log row {row.id})"
        created = self._run(
            self.ledger.create_user,
            f"deleted-user-{row.id}@flexmeasures.example",
            account_id=account,
            username=username,
            actor=actor,
            reason=f"{reason}; deleted in FlexMeasures since, which kept no email or account",
        )
        if created is not None:
            self._map("deleted-user", row.id, created)
            if row.affected_user_id is not None:
                self._map("user", row.affected_user_id, created)
        return cast(UUID | None, created)

    def _erase_deleted(self, change: Change, actor: str, reason: str) -> None:
        owner = None
        if change.name:
            owner = self.ledger.claims.owner(USERNAME, change.name, self.batch.uow)
        if owner is None:
            owner = self._deleted_user(change, actor, reason)
        if owner is None:
            return
        self._run(self.ledger.erase_user, owner, actor=actor, reason=f"{reason}: user deleted")

    def _catch_up_logins(self, user_id: int) -> None:
        """Bring the user's login count up to FlexMeasures' count, the logins at its last
        login time (FlexMeasures keeps no earlier ones); none while the user is inactive."""
        user = self.snapshot.users[user_id]
        with self.clock.set_to(user.last_login_at):
            ledger_id = self._user(user_id, IMPORT_ACTOR, OBSERVED)
            if ledger_id is None:
                return
            held = self.batch.uow.load(User, ledger_id, "user")
            missing = user.login_count - held.login_count
            if missing > 0 and (not held.active or held.erased):
                self.report.problems.append(
                    f"user {user_id}: {missing} login(s) not recorded: inactive in the ledger"
                )
                return
            for _ in range(max(missing, 0)):
                self._run(self.ledger.record_login, ledger_id, at=user.last_login_at)

    # -- reconciliation -------------------------------------------------------------------------

    def _reconcile(self) -> None:
        snapshot = self.snapshot
        for kind, cls, roles in (
            ("role", Role, snapshot.roles),
            ("account_role", AccountRole, snapshot.account_roles),
        ):
            for role in roles.values():
                self._role(cls, role.name, role.description)
                self._describe(cls, role.name, role.description)
                if (kind, role.id) not in self.ids:
                    self._map(kind, role.id, cls.id_for(role.name))
        for account_id in snapshot.accounts:
            self._account(account_id, IMPORT_ACTOR, OBSERVED)
        before = self._previous
        accounts = _changed(snapshot.accounts, None if before is None else before.accounts)
        users = _changed(snapshot.users, None if before is None else before.users)
        wanted = [("account", a.id) for a in accounts] + [("user", u.id) for u in users]
        self.batch.preload(self.ids[key] for key in wanted if key in self.ids)
        new_users = [u for u in users if ("user", u.id) not in self.ids]
        self.batch.prefetch_claims(
            [u.email for u in new_users],
            [u.username for u in new_users],
            [a.name for a in accounts if ("account", a.id) not in self.ids],
        )
        for account in accounts:
            self._reconcile_account(account)
        for user in users:
            self._reconcile_user(user)
        for (kind, external_id), ledger_id in list(self.ids.items()):
            if before is not None and not (
                (kind == "user" and external_id in before.users)
                or (kind == "account" and external_id in before.accounts)
            ):
                continue  # gone before the last sync, which saw to it
            if kind == "user" and external_id not in snapshot.users:
                reason = f"{OBSERVED} (deleted in FlexMeasures)"
                self._run(self.ledger.erase_user, ledger_id, actor=IMPORT_ACTOR, reason=reason)
            elif kind == "account" and external_id not in snapshot.accounts:
                held = self.batch.uow.load(Account, ledger_id, "account")
                if not held.closed:
                    self._run(
                        self.ledger.close_account, ledger_id, actor=IMPORT_ACTOR, reason=OBSERVED
                    )
        self._reconcile_annotations()

    def _reconcile_account(self, account: fm.Account) -> None:
        ledger_id = self.ids.get(("account", account.id))
        if ledger_id is None:
            return
        held = self.batch.uow.load(Account, ledger_id, "account")
        if held.closed:
            return
        changes: dict[str, Any] = {}
        if held.name != account.name:
            changes["name"] = account.name
        if (held.primary_color, held.secondary_color) != (
            account.primary_color,
            account.secondary_color,
        ) and bool(account.primary_color) == bool(account.secondary_color):
            changes["primary_color"] = account.primary_color or None
            changes["secondary_color"] = account.secondary_color or None
        if held.logo_url != (account.logo_url or None):
            changes["logo_url"] = account.logo_url or None
        if changes:
            self._run(
                self.ledger.update_account,
                ledger_id,
                actor=IMPORT_ACTOR,
                reason=OBSERVED,
                **changes,
            )
        consultancy = None
        if account.consultancy_account_id is not None:
            consultancy = self.ids.get(("account", account.consultancy_account_id))
        if held.consultancy_account_id != consultancy:
            self._run(
                self.ledger.set_consultancy,
                ledger_id,
                consultancy,
                actor=IMPORT_ACTOR,
                reason=OBSERVED,
            )
        for role in sorted(account.roles - held.roles):
            self._run(
                self.ledger.grant_account_role, ledger_id, role, actor=IMPORT_ACTOR, reason=OBSERVED
            )
        for role in sorted(held.roles - account.roles):
            self._run(
                self.ledger.revoke_account_role,
                ledger_id,
                role,
                actor=IMPORT_ACTOR,
                reason=OBSERVED,
            )

    def _reconcile_user(self, user: fm.User) -> None:
        ledger_id = self._user(user.id, IMPORT_ACTOR, OBSERVED)
        if ledger_id is None:
            return
        held = self.batch.uow.load(User, ledger_id, "user")
        if held.erased:
            return
        changes: dict[str, Any] = {}
        if held.email.casefold() != user.email.strip().casefold():
            changes["email"] = user.email
        if held.username != user.username:
            changes["username"] = user.username
        if held.timezone != user.timezone:
            changes["timezone"] = user.timezone
        if changes:
            self._run(
                self.ledger.update_user, ledger_id, actor=IMPORT_ACTOR, reason=OBSERVED, **changes
            )
        account = self._account(user.account_id, IMPORT_ACTOR, OBSERVED)
        if account is not None and held.account_id != account:
            self._run(
                self.ledger.move_user, ledger_id, account, actor=IMPORT_ACTOR, reason=OBSERVED
            )
        for role in sorted(user.roles - held.roles):
            self._role(Role, role, self._description(Role, role))
            self._run(self.ledger.grant_role, ledger_id, role, actor=IMPORT_ACTOR, reason=OBSERVED)
        for role in sorted(held.roles - user.roles):
            self._run(self.ledger.revoke_role, ledger_id, role, actor=IMPORT_ACTOR, reason=OBSERVED)
        if user.active and not held.active:
            self._run(self.ledger.reactivate_user, ledger_id, actor=IMPORT_ACTOR, reason=OBSERVED)
        if user.login_count > held.login_count and user.last_login_at is not None:
            self._catch_up_logins(user.id)
        if (
            user.last_seen_at is not None
            and held.active
            and (held.last_seen_at is None or user.last_seen_at > held.last_seen_at)
        ):
            self._run(self.ledger.record_last_seen, ledger_id, at=user.last_seen_at)
        if not user.active and held.active:
            self._run(self.ledger.deactivate_user, ledger_id, actor=IMPORT_ACTOR, reason=OBSERVED)

    def _reconcile_annotations(self) -> None:
        before = self._previous
        for annotation in _changed(
            self.snapshot.annotations, None if before is None else before.annotations
        ):
            if ("annotation", annotation.id) in self.ids:
                continue
            account = self.ids.get(("account", annotation.account_id))
            if account is None:
                continue
            source: str | UUID = annotation.source_name
            if annotation.source_user_id is not None:
                source = self.ids.get(("user", annotation.source_user_id), source)
            added = self._run(
                self.ledger.add_annotation,
                account,
                content=annotation.content,
                start=annotation.start,
                end=annotation.end,
                source=source,
                type=annotation.type,
                belief_time=annotation.belief_time,
                actor=IMPORT_ACTOR,
                reason=OBSERVED,
            )
            if added is not None:
                self._map("annotation", annotation.id, added)
        gone = {
            ledger_id
            for (kind, external_id), ledger_id in self.ids.items()
            if kind == "annotation"
            and external_id not in self.snapshot.annotations
            and (before is None or external_id in before.annotations)
        }
        if not gone:
            return
        for (kind, _), account_id in list(self.ids.items()):
            if kind != "account":
                continue
            held = self.batch.uow.load(Account, account_id, "account")
            for annotation_id in gone & set(held.annotations) - held.removed_annotations:
                self._run(
                    self.ledger.remove_annotation,
                    account_id,
                    annotation_id,
                    actor=IMPORT_ACTOR,
                    reason=OBSERVED,
                )
