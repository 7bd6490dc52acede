"""Every rule of SPEC §3: a bad command raises the right error, names the value, records nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from ledger import Conflict, InactiveUser, Ledger, LedgerError, NotFound, ValidationError
from tests.conftest import ADMIN
from tests.helpers import stored_state

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
T1 = T0 + timedelta(hours=1)
NAIVE = datetime(2026, 3, 1, 9, 0)


@dataclass
class World:
    led: Ledger
    acme: UUID
    client: UUID
    closed: UUID
    ann: UUID
    bob: UUID


@pytest.fixture
def world(led: Ledger, acme: UUID) -> World:
    client = led.create_account("Client", actor=ADMIN, consultancy_account_id=acme)
    closed = led.create_account("Gone", actor=ADMIN)
    led.close_account(closed, actor=ADMIN)
    ann = led.create_user("ann@example.org", account_id=acme, actor=ADMIN)
    bob = led.create_user("bob@example.org", account_id=acme, actor=ADMIN)
    led.deactivate_user(bob, actor=ADMIN)
    return World(led, acme, client, closed, ann, bob)


def annotation(w: World, **overrides: Any) -> Any:
    fields: dict[str, Any] = dict(
        content="Maintenance", start=T0, end=T1, source="ops", actor=ADMIN
    )
    return w.led.add_annotation(w.acme, **{**fields, **overrides})


UNKNOWN = uuid4()


def str_of(name: str) -> str:
    """Placeholder resolved per world: the id of the named fixture object."""
    return f"<{name}>"


CASES: dict[str, tuple[Callable[[World], Any], type[LedgerError], str]] = {
    "malformed email": (
        lambda w: w.led.create_user("not-an-email", account_id=w.acme, actor=ADMIN),
        ValidationError,
        "'not-an-email'",
    ),
    "email without domain dot": (
        lambda w: w.led.create_user("ann@localhost", account_id=w.acme, actor=ADMIN),
        ValidationError,
        "'ann@localhost'",
    ),
    "duplicate email in other case": (
        lambda w: w.led.create_user("ANN@Example.org", account_id=w.acme, actor=ADMIN),
        Conflict,
        "'ANN@example.org'",
    ),
    "duplicate email on update": (
        lambda w: w.led.update_user(w.bob, actor=ADMIN, email="Ann@example.org"),
        Conflict,
        "'Ann@example.org'",
    ),
    "duplicate username": (
        lambda w: w.led.create_user(
            "x@example.org", account_id=w.acme, actor=ADMIN, username="bob"
        ),
        Conflict,
        "'bob'",
    ),
    "over-long username": (
        lambda w: w.led.create_user(
            "x@example.org", account_id=w.acme, actor=ADMIN, username="u" * 256
        ),
        ValidationError,
        "'uuuu",
    ),
    "unknown account": (
        lambda w: w.led.create_user("x@example.org", account_id=UNKNOWN, actor=ADMIN),
        NotFound,
        str(UNKNOWN),
    ),
    "account id that is a user": (
        lambda w: w.led.create_user("x@example.org", account_id=w.ann, actor=ADMIN),
        NotFound,
        str_of("ann"),
    ),
    "closed account": (
        lambda w: w.led.create_user("x@example.org", account_id=w.closed, actor=ADMIN),
        Conflict,
        "'Gone'",
    ),
    "not a uuid": (
        lambda w: w.led.grant_role("ann", "admin", actor=ADMIN),
        ValidationError,
        "'ann'",
    ),
    "unknown user": (
        lambda w: w.led.grant_role(UNKNOWN, "admin", actor=ADMIN),
        NotFound,
        str(UNKNOWN),
    ),
    "unknown role": (
        lambda w: w.led.grant_role(w.ann, "superuser", actor=ADMIN),
        NotFound,
        "'superuser'",
    ),
    "unknown role at creation": (
        lambda w: w.led.create_user(
            "x@example.org", account_id=w.acme, actor=ADMIN, roles=["admin", "root"]
        ),
        NotFound,
        "'root'",
    ),
    "account role from the user catalogue": (
        lambda w: w.led.grant_account_role(w.acme, "admin", actor=ADMIN),
        NotFound,
        "account role 'admin'",
    ),
    "unknown account role at creation": (
        lambda w: w.led.create_account("New", actor=ADMIN, roles=["Utility"]),
        NotFound,
        "'Utility'",
    ),
    "empty actor": (
        lambda w: w.led.grant_role(w.ann, "admin", actor=""),
        ValidationError,
        "actor ''",
    ),
    "blank actor": (lambda w: w.led.define_role("x", actor="   "), ValidationError, "actor '   '"),
    "missing actor": (lambda w: w.led.define_role("x", actor=None), ValidationError, "actor None"),
    "over-long reason": (
        lambda w: w.led.grant_role(w.ann, "admin", actor=ADMIN, reason="r" * 501),
        ValidationError,
        "reason 'rrr",
    ),
    "blank command id": (
        lambda w: w.led.grant_role(w.ann, "admin", actor=ADMIN, command_id=" "),
        ValidationError,
        "command_id ' '",
    ),
    "bad timezone": (
        lambda w: w.led.create_user(
            "x@example.org", account_id=w.acme, actor=ADMIN, timezone="Mars/Olympus"
        ),
        ValidationError,
        "'Mars/Olympus'",
    ),
    "bad timezone on update": (
        lambda w: w.led.update_user(w.ann, actor=ADMIN, timezone="CET+1"),
        ValidationError,
        "'CET+1'",
    ),
    "half colour pair": (
        lambda w: w.led.create_account("New", actor=ADMIN, primary_color="#112233"),
        ValidationError,
        "'#112233'",
    ),
    "half colour pair on update": (
        lambda w: w.led.update_account(w.acme, actor=ADMIN, secondary_color="#112233"),
        ValidationError,
        "'#112233'",
    ),
    "colour not #RRGGBB": (
        lambda w: w.led.create_account(
            "New", actor=ADMIN, primary_color="red", secondary_color="#000000"
        ),
        ValidationError,
        "'red'",
    ),
    "short colour": (
        lambda w: w.led.update_account(
            w.acme, actor=ADMIN, primary_color="#fff", secondary_color="#000000"
        ),
        ValidationError,
        "'#fff'",
    ),
    "logo url not http(s)": (
        lambda w: w.led.create_account("New", actor=ADMIN, logo_url="ftp://x.org/logo.png"),
        ValidationError,
        "'ftp://x.org/logo.png'",
    ),
    "logo url not a url": (
        lambda w: w.led.update_account(w.acme, actor=ADMIN, logo_url="logo.png"),
        ValidationError,
        "'logo.png'",
    ),
    "over-long logo url": (
        lambda w: w.led.update_account(w.acme, actor=ADMIN, logo_url="https://x.org/" + "a" * 250),
        ValidationError,
        "'https://x.org/aaa",
    ),
    "blank account name": (
        lambda w: w.led.create_account("   ", actor=ADMIN),
        ValidationError,
        "'   '",
    ),
    "over-long account name": (
        lambda w: w.led.create_account("n" * 101, actor=ADMIN),
        ValidationError,
        "'nnnn",
    ),
    "duplicate account name": (
        lambda w: w.led.create_account("Client", actor=ADMIN),
        Conflict,
        "'Client'",
    ),
    "rename onto an open account": (
        lambda w: w.led.update_account(w.client, actor=ADMIN, name="Acme"),
        Conflict,
        "'Acme'",
    ),
    "blank role name": (
        lambda w: w.led.define_role("", actor=ADMIN),
        ValidationError,
        "role name ''",
    ),
    "over-long role name": (
        lambda w: w.led.define_account_role("r" * 81, actor=ADMIN),
        ValidationError,
        "'rrrr",
    ),
    "over-long role description": (
        lambda w: w.led.define_role("x", "d" * 256, actor=ADMIN),
        ValidationError,
        "'dddd",
    ),
    "self consultancy": (
        lambda w: w.led.set_consultancy(w.acme, w.acme, actor=ADMIN),
        ValidationError,
        str_of("acme"),
    ),
    "cyclic consultancy": (
        lambda w: w.led.set_consultancy(w.acme, w.client, actor=ADMIN),
        ValidationError,
        "cycle",
    ),
    "unknown consultancy": (
        lambda w: w.led.create_account("New", actor=ADMIN, consultancy_account_id=UNKNOWN),
        NotFound,
        str(UNKNOWN),
    ),
    "closed consultancy": (
        lambda w: w.led.set_consultancy(w.client, w.closed, actor=ADMIN),
        Conflict,
        "'Gone'",
    ),
    "annotation end before start": (
        lambda w: annotation(w, end=T0 - timedelta(seconds=1)),
        ValidationError,
        "end 2026",
    ),
    "annotation end equal to start": (
        lambda w: annotation(w, end=T0),
        ValidationError,
        "end 2026-03-01T09:00:00+00:00",
    ),
    "naive annotation start": (
        lambda w: annotation(w, start=NAIVE),
        ValidationError,
        "start a naive datetime",
    ),
    "naive belief time": (
        lambda w: annotation(w, belief_time=NAIVE),
        ValidationError,
        "belief_time a naive",
    ),
    "naive login time": (
        lambda w: w.led.record_login(w.ann, at=NAIVE),
        ValidationError,
        "at a naive datetime",
    ),
    "naive last seen time": (
        lambda w: w.led.record_last_seen(w.ann, at=NAIVE),
        ValidationError,
        "at a naive",
    ),
    "content over 1024 characters": (
        lambda w: annotation(w, content="c" * 1025),
        ValidationError,
        "'cccc",
    ),
    "empty content": (lambda w: annotation(w, content=""), ValidationError, "content ''"),
    "unknown annotation type": (lambda w: annotation(w, type="note"), ValidationError, "'note'"),
    "unknown source user": (lambda w: annotation(w, source=UNKNOWN), NotFound, str(UNKNOWN)),
    "missing source": (lambda w: annotation(w, source=None), ValidationError, "source None"),
    "annotation on unknown account": (
        lambda w: w.led.add_annotation(
            UNKNOWN, content="x", start=T0, end=T1, source="s", actor=ADMIN
        ),
        NotFound,
        str(UNKNOWN),
    ),
    "remove unknown annotation": (
        lambda w: w.led.remove_annotation(w.acme, UNKNOWN, actor=ADMIN),
        NotFound,
        str(UNKNOWN),
    ),
    "login of an inactive user": (
        lambda w: w.led.record_login(w.bob),
        InactiveUser,
        "'bob@example.org'",
    ),
    "last seen of an inactive user": (
        lambda w: w.led.record_last_seen(w.bob),
        InactiveUser,
        "'bob@example.org'",
    ),
    "bad login ip": (
        lambda w: w.led.record_login(w.ann, ip="300.1.1.1"),
        ValidationError,
        "'300.1.1.1'",
    ),
    "empty password": (
        lambda w: w.led.set_password(w.ann, "", actor=ADMIN),
        ValidationError,
        "invalid password: must not be empty",
    ),
    "erasure without a reason": (
        lambda w: w.led.erase_user(w.ann, actor=ADMIN, reason=""),
        ValidationError,
        "reason",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_rejected_command_records_nothing(world: World, case: str) -> None:
    command, error_class, named = CASES[case]
    if named.startswith("<"):
        named = str(getattr(world, named.strip("<>")))
    before = stored_state(world.led)
    with pytest.raises(error_class) as raised:
        command(world)
    assert named in str(raised.value)
    assert isinstance(raised.value, LedgerError)
    assert stored_state(world.led) == before
