"""Random command histories against both databases and a plain in-memory reference model:
every command's outcome, the final state of every aggregate, and the read models (caught up
in random page sizes, asked about random past instants) must agree, and the read models must
equal a fresh rebuild row for row."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any
from uuid import UUID

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import Ledger, LedgerError
from projections import ReadModel
from tests.conftest import ADMIN, create_pg_database
from tests.readmodel_dump import dump

pytestmark = pytest.mark.slow

ROLES = ["admin", "consultant", "viewer"]  # "viewer" is defined only by a generated command
NAMES = ["Acme", "Beta", "Gamma", "Delta", "Epsilon", "Zeta"]
EMAILS = [
    "ann@x.org",
    "ANN@x.org",
    "ann@y.org",
    "bob@x.org",
    "carl@y.org",
    "dora@x.org",
    "ed@z.org",
    "fay@z.org",
    "gus@x.org",
    "hal@y.org",
]
ERASED = "[erased]"
PREFIX = [("create_account", "Acme"), ("define_role", "admin"), ("define_role", "consultant")]
LOCAL_EXAMPLES = 40  # outside CI; the "ci" profile (tests/conftest.py) runs more
US = timedelta(microseconds=1)


@dataclass
class RefUser:
    email: str
    username: str
    account: int
    active: bool = True
    erased: bool = False
    roles: set[str] = field(default_factory=set)
    login_count: int = 0


@dataclass
class RefAccount:
    name: str
    closed: bool = False
    roles: set[str] = field(default_factory=set)
    members: list[int] = field(default_factory=list)
    consultancy: int | None = None


class Reference:
    """SPEC §3's rules, written as plainly as possible."""

    def __init__(self) -> None:
        self.roles: set[str] = set()
        self.accounts: list[RefAccount] = []
        self.users: list[RefUser] = []

    def _email_taken(self, email: str) -> bool:
        return any(u.email.casefold() == email.casefold() for u in self.users if not u.erased)

    def _username_taken(self, name: str) -> bool:
        return any(u.username == name for u in self.users if not u.erased)

    def define_role(self, role: str) -> Any:
        if role in self.roles:
            return "Conflict"
        self.roles.add(role)
        return True

    def create_account(self, name: str) -> Any:
        if any(a.name == name and not a.closed for a in self.accounts):
            return "Conflict"
        self.accounts.append(RefAccount(name))
        return ("account", len(self.accounts) - 1)

    def close_account(self, a: int) -> Any:
        account = self.accounts[a]
        if account.closed:
            return False
        for member in account.members:
            self.users[member].active = False
        account.roles.clear()
        account.closed = True
        return True

    def grant_account_role(self, a: int) -> Any:
        account = self.accounts[a]
        if account.closed:
            return "Conflict"
        if "Consultancy" in account.roles:
            return False
        account.roles.add("Consultancy")
        return True

    def set_consultancy(self, a: int, c: int | None) -> Any:
        if a == c:
            return "ValidationError"
        if self.accounts[a].closed:
            return "Conflict"
        if c is not None:
            if self.accounts[c].closed:
                return "Conflict"
            current: int | None = c
            while current is not None:
                if current == a:
                    return "ValidationError"
                current = self.accounts[current].consultancy
        if self.accounts[a].consultancy == c:
            return False
        self.accounts[a].consultancy = c
        return True

    def create_user(self, email: str, a: int) -> Any:
        if self.accounts[a].closed:
            return "Conflict"
        if self._email_taken(email):
            return "Conflict"
        local = email.split("@")[0]
        username = email if self._username_taken(local) else local
        if self._username_taken(username):
            return "Conflict"
        self.users.append(RefUser(email, username, a))
        self.accounts[a].members.append(len(self.users) - 1)
        return ("user", len(self.users) - 1)

    def grant_role(self, u: int, role: str, grant: bool) -> Any:
        user = self.users[u]
        if role not in self.roles:
            return "NotFound"
        if user.erased:
            return "Conflict"
        if (role in user.roles) == grant:
            return False
        (user.roles.add if grant else user.roles.discard)(role)
        return True

    def deactivate_user(self, u: int) -> Any:
        if not self.users[u].active:
            return False
        self.users[u].active = False
        return True

    def reactivate_user(self, u: int) -> Any:
        user = self.users[u]
        if user.active:
            return False
        if self.accounts[user.account].closed or user.erased:
            return "Conflict"
        user.active = True
        return True

    def record_login(self, u: int) -> Any:
        user = self.users[u]
        if user.erased:
            return "Conflict"
        if not user.active:
            return "InactiveUser"
        user.login_count += 1
        return True

    def update_email(self, u: int, email: str) -> Any:
        user = self.users[u]
        if user.erased:
            return "Conflict"
        if email == user.email:
            return False
        if email.casefold() != user.email.casefold() and self._email_taken(email):
            return "Conflict"
        user.email = email
        return True

    def erase_user(self, u: int) -> Any:
        user = self.users[u]
        if user.erased:
            return False
        user.active = False
        user.erased = True
        return True


# An account or user is addressed by a number taken modulo how many exist when the command
# runs, so a command names one whenever there is one, among all of them.
index = st.integers(min_value=0, max_value=7)
granted = st.sampled_from(ROLES)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("define_role"), st.sampled_from(ROLES)),
        st.tuples(st.just("create_account"), st.sampled_from(NAMES)),
        st.tuples(st.just("close_account"), index),
        st.tuples(st.just("grant_account_role"), index),
        st.tuples(st.just("set_consultancy"), index, st.none() | index),
        st.tuples(st.just("create_user"), st.sampled_from(EMAILS), index),
        st.tuples(st.just("create_user"), st.sampled_from(EMAILS), index),
        st.tuples(st.just("create_user"), st.sampled_from(EMAILS), index),
        st.tuples(st.just("grant_role"), index, granted, st.booleans()),
        st.tuples(st.just("grant_role"), index, granted, st.just(True)),
        st.tuples(st.just("grant_role"), index, granted, st.just(True)),
        st.tuples(st.just("grant_role"), index, granted, st.just(True)),
        st.tuples(st.just("deactivate_user"), index),
        st.tuples(st.just("reactivate_user"), index),
        st.tuples(st.just("deactivate_user"), index),
        st.tuples(st.just("reactivate_user"), index),
        st.tuples(st.just("record_login"), index),
        st.tuples(st.just("update_email"), index, st.sampled_from(EMAILS)),
        st.tuples(st.just("erase_user"), index),
        st.tuples(st.just("catch_up"), st.integers(min_value=1, max_value=9)),
    ),
    min_size=20,
    max_size=60,
)
ACCOUNT_ARGUMENTS = {
    "close_account": (0,),
    "grant_account_role": (0,),
    "set_consultancy": (0, 1),
    "create_user": (1,),
}
USER_ARGUMENTS = {
    name: (0,)
    for name in (
        "grant_role",
        "deactivate_user",
        "reactivate_user",
        "record_login",
        "update_email",
        "erase_user",
    )
}


def apply(led: Ledger, accounts: list[UUID], users: list[UUID], op: tuple[Any, ...]) -> Any:
    name, *args = op
    try:
        match name:
            case "define_role":
                return led.define_role(args[0], actor=ADMIN)
            case "create_account":
                accounts.append(led.create_account(args[0], actor=ADMIN))
                return ("account", len(accounts) - 1)
            case "close_account":
                return led.close_account(accounts[args[0]], actor=ADMIN)
            case "grant_account_role":
                return led.grant_account_role(accounts[args[0]], "Consultancy", actor=ADMIN)
            case "set_consultancy":
                target = None if args[1] is None else accounts[args[1]]
                return led.set_consultancy(accounts[args[0]], target, actor=ADMIN)
            case "create_user":
                users.append(led.create_user(args[0], account_id=accounts[args[1]], actor=ADMIN))
                return ("user", len(users) - 1)
            case "grant_role":
                change = led.grant_role if args[2] else led.revoke_role
                return change(users[args[0]], args[1], actor=ADMIN)
            case "deactivate_user":
                return led.deactivate_user(users[args[0]], actor=ADMIN)
            case "reactivate_user":
                return led.reactivate_user(users[args[0]], actor=ADMIN)
            case "record_login":
                return led.record_login(users[args[0]])
            case "update_email":
                return led.update_user(users[args[0]], actor=ADMIN, email=args[1])
            case "erase_user":
                return led.erase_user(users[args[0]], actor=ADMIN, reason="test")
    except LedgerError as error:
        return type(error).__name__
    raise AssertionError(name)


def addressed(reference: Reference, op: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """The command with its account and user numbers taken modulo how many exist; None if it
    names one and there is none yet, or if it is not a command (catch_up)."""
    name, *args = op
    if name == "catch_up":
        return None
    for positions, count in (
        (ACCOUNT_ARGUMENTS.get(name, ()), len(reference.accounts)),
        (USER_ARGUMENTS.get(name, ()), len(reference.users)),
    ):
        for position in positions:
            if args[position] is None:
                continue
            if count == 0:
                return None
            args[position] %= count
    return (name, *args)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def tick(self) -> datetime:
        self.now += timedelta(seconds=61, microseconds=123_457)  # instants with microseconds
        return self.now


def effective_roles(reference: Reference) -> list[set[str]]:
    return [set(u.roles) if u.active else set() for u in reference.users]


def check_history(url: str, ops: list[tuple[Any, ...]], page_size: int = 1000) -> None:
    """`page_size`: the rebuild's pages (small ones: a history spans many)."""
    reference = Reference()
    clock = Clock()
    led = Ledger(url, clock=clock)
    rm = ReadModel(url, page_size=page_size)
    history: list[tuple[datetime, list[set[str]]]] = []
    try:
        led.define_account_role("Consultancy", actor=ADMIN)
        accounts: list[UUID] = []
        users: list[UUID] = []
        for generated in [*PREFIX, *ops]:
            if generated[0] == "catch_up":
                rm.projector.page_size = generated[1]
                rm.catch_up()
            op = addressed(reference, generated)
            if op is None:
                continue
            expected = getattr(reference, op[0])(*op[1:])
            assert apply(led, accounts, users, op) == expected, op
            history.append((clock(), effective_roles(reference)))
            clock.tick()
        fresh = Ledger(url)  # no cache: everything comes from the stored events
    finally:
        led.close()
    try:
        check_aggregates(fresh, reference, accounts, users)
        rm.catch_up()
        check_read_models(rm, reference, accounts, users, history)
        caught_up = dump(rm)
        rm.rebuild()
        assert dump(rm) == caught_up
    finally:
        fresh.close()
        rm.close()


def check_aggregates(
    fresh: Ledger, reference: Reference, accounts: list[UUID], users: list[UUID]
) -> None:
    for ref_user, user_id in zip(reference.users, users, strict=True):
        user = fresh.repository.get(user_id)
        assert user.email == (ERASED if ref_user.erased else ref_user.email)
        assert user.username == (ERASED if ref_user.erased else ref_user.username)
        assert (user.active, user.erased) == (ref_user.active, ref_user.erased)
        assert user.roles == ref_user.roles
        assert user.login_count == ref_user.login_count
        assert user.account_id == accounts[ref_user.account]
    for ref_account, account_id in zip(reference.accounts, accounts, strict=True):
        account = fresh.repository.get(account_id)
        assert (account.name, account.closed) == (ref_account.name, ref_account.closed)
        assert account.roles == ref_account.roles
        assert account.members == {users[m] for m in ref_account.members}
        expected = None if ref_account.consultancy is None else accounts[ref_account.consultancy]
        assert account.consultancy_account_id == expected
        if not ref_account.closed:
            assert fresh.account_id_for_name(ref_account.name) == account_id
    for ref_user, user_id in zip(reference.users, users, strict=True):
        if not ref_user.erased:
            assert fresh.user_id_for_email(ref_user.email.upper()) == user_id


def check_read_models(
    rm: ReadModel,
    reference: Reference,
    accounts: list[UUID],
    users: list[UUID],
    history: list[tuple[datetime, list[set[str]]]],
) -> None:
    for ref_user, user_id in zip(reference.users, users, strict=True):
        user = rm.get_user(user_id)
        assert user is not None
        assert user.email == (ERASED if ref_user.erased else ref_user.email)
        assert (user.active, user.erased) == (ref_user.active, ref_user.erased)
        assert set(user.roles) == ref_user.roles
        assert user.login_count == ref_user.login_count
        assert rm.roles(user_id) == (ref_user.roles if ref_user.active else set())
        if not ref_user.erased:
            assert rm.find_user_by_email(ref_user.email.swapcase()) == user
    for ref_account, account_id in zip(reference.accounts, accounts, strict=True):
        account = rm.get_account(account_id)
        assert account is not None
        assert (account.name, account.closed) == (ref_account.name, ref_account.closed)
        assert set(account.account_roles) == ref_account.roles
    # Each command's events carry the instant it ran at (the clock ticks between commands).
    # Every user is probed one microsecond after each command; a user whose effective roles
    # the command changed, also at its instant and one microsecond before it.
    before: list[set[str]] = []
    for moment, roles_then in history:
        probes = [(moment + US, roles_then)]
        changed = {
            index
            for index, roles in enumerate(roles_then)
            if roles != (before[index] if index < len(before) else set())
        }
        probes += [(moment, roles_then), (moment - US, before)]
        for probe, expected in probes:
            for index, user_id in enumerate(users):
                if probe != moment + US and index not in changed:
                    continue
                roles = expected[index] if index < len(expected) else set()  # not created yet
                assert rm.roles(user_id, at=probe) == roles, (index, probe)
                for role in ROLES:
                    assert rm.has_role(user_id, role, at=probe) == (role in roles), (index, probe)
        before = roles_then


@pytest.fixture(scope="module")
def reusable_pg_database(postgres_server: str) -> Iterator[str]:
    url, drop = create_pg_database(postgres_server)
    try:
        yield url
    finally:
        drop()


@contextmanager
def fresh_database(backend: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """An empty database for each example (fixtures would be shared between examples). On
    PostgreSQL one database is emptied between examples: creating one costs twice as much."""
    if backend == "sqlite":
        with TemporaryDirectory() as folder:
            yield f"sqlite:///{Path(folder) / 'ledger.db'}"
        return
    url = request.getfixturevalue("reusable_pg_database")
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    yield url


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
@settings(
    max_examples=(
        settings().max_examples if settings.get_current_profile_name() == "ci" else LOCAL_EXAMPLES
    ),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(ops=operations, page_size=st.sampled_from([1, 2, 5, 1000]))
def test_random_histories_match_the_reference_model(
    backend: str, request: pytest.FixtureRequest, ops: list[Any], page_size: int
) -> None:
    with fresh_database(backend, request) as url:
        check_history(url, ops, page_size)
