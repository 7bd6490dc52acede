"""Every rule of SPEC §3: a bad command raises the right error, names the value, records nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID, uuid4

import pytest

from ledger import Conflict, InactiveUser, Ledger, LedgerError, NotFound, ValidationError
from ledger.domain import User
from ledger.validation import Moment, valid
from projections import ReadModel
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


# -- text fields, echoed values, our own words --------------------------------------------------

BAD = "before\x00after"

TEXT_FIELDS: dict[str, tuple[Callable[[World, str], Any], str]] = {
    "role name": (lambda w, v: w.led.define_role(v, actor=ADMIN), "role name"),
    "role description": (
        lambda w, v: w.led.define_role("viewer", v, actor=ADMIN),
        "description",
    ),
    "account role name": (
        lambda w, v: w.led.define_account_role(v, actor=ADMIN),
        "account role name",
    ),
    "account name": (lambda w, v: w.led.create_account(v, actor=ADMIN), "account name"),
    "new account name": (
        lambda w, v: w.led.update_account(w.acme, name=v, actor=ADMIN),
        "account name",
    ),
    "logo url": (
        lambda w, v: w.led.create_account("New", logo_url=f"https://x.org/{v}", actor=ADMIN),
        "logo_url",
    ),
    "email": (
        lambda w, v: w.led.create_user(f"{v}@example.org", account_id=w.acme, actor=ADMIN),
        "email",
    ),
    "username": (
        lambda w, v: w.led.create_user("x@example.org", account_id=w.acme, actor=ADMIN, username=v),
        "username",
    ),
    "new username": (
        lambda w, v: w.led.update_user(w.ann, username=v, actor=ADMIN),
        "username",
    ),
    "timezone": (
        lambda w, v: w.led.create_user(
            "x@example.org", account_id=w.acme, actor=ADMIN, timezone=f"Europe/{v}"
        ),
        "timezone",
    ),
    "granted role": (lambda w, v: w.led.grant_role(w.ann, v, actor=ADMIN), "role name"),
    "actor": (lambda w, v: w.led.grant_role(w.ann, "admin", actor=v), "actor"),
    "reason": (
        lambda w, v: w.led.grant_role(w.ann, "admin", actor=ADMIN, reason=v),
        "reason",
    ),
    "command id": (
        lambda w, v: w.led.grant_role(w.ann, "admin", actor=ADMIN, command_id=v),
        "command_id",
    ),
    "annotation content": (lambda w, v: annotation(w, content=v), "content"),
    "annotation source": (lambda w, v: annotation(w, source=v), "source"),
    "login ip": (lambda w, v: w.led.record_login(w.ann, ip=f"10.0.0.1{v}"), "ip"),
}


@pytest.mark.parametrize("field", sorted(TEXT_FIELDS))
def test_every_text_field_rejects_a_nul_naming_the_field(world: World, field: str) -> None:
    command, named = TEXT_FIELDS[field]
    before = stored_state(world.led)
    with pytest.raises(ValidationError) as raised:
        command(world, BAD)
    message = str(raised.value)
    assert message.startswith(f"invalid {named} ") and "U+0000" in message
    assert "\x00" not in message and len(message.splitlines()) == 1
    assert stored_state(world.led) == before


@pytest.mark.parametrize(
    "character", ["\x01", "\x08", "\x0b", "\x0c", "\r", "\x1b", "\x1f", "\x7f", "\x85", "\x9f"]
)
def test_control_characters_other_than_tab_and_newline_are_rejected(
    world: World, character: str
) -> None:
    before = stored_state(world.led)
    with pytest.raises(ValidationError, match=r"invalid content .* control character"):
        annotation(world, content=f"one{character}two")
    with pytest.raises(ValidationError, match="invalid reason"):
        world.led.grant_role(world.ann, "admin", actor=ADMIN, reason=f"one{character}two")
    assert stored_state(world.led) == before


def test_a_lone_surrogate_is_rejected_naming_the_field(world: World) -> None:
    before = stored_state(world.led)
    for command in (
        lambda: world.led.create_account("Acme \ud800", actor=ADMIN),
        lambda: world.led.create_user("\udc00@example.org", account_id=world.acme, actor=ADMIN),
        lambda: world.led.grant_role(world.ann, "admin", actor=ADMIN, command_id="id-\ud800"),
    ):
        with pytest.raises(ValidationError, match="lone surrogate"):
            command()
    assert stored_state(world.led) == before


def test_tab_and_newline_are_kept_and_projected(world: World, rm: ReadModel) -> None:
    content = "first line\n\tsecond line"
    annotation(world, content=content, reason="why:\n\tbecause")
    rm.catch_up()
    assert [a.content for a in rm.search_annotations(world.acme)] == [content]


def test_a_rejected_value_is_cut_short_and_a_password_is_never_shown(world: World) -> None:
    before = stored_state(world.led)
    huge = "N" * 10_000_000
    with pytest.raises(ValidationError) as raised:
        world.led.create_account(huge, actor=ADMIN)
    message = str(raised.value)
    assert len(message) < 250 and "'NNNN" in message and "10,000,000 characters" in message
    for password, secret in (("p" * 10_000_000, "ppp"), ("hunter2\x00", "hunter2")):
        for command in (
            lambda p=password: world.led.set_password(world.ann, p, actor=ADMIN),
            lambda p=password: world.led.create_user(
                "x@example.org", account_id=world.acme, actor=ADMIN, password=p
            ),
        ):
            with pytest.raises(ValidationError) as raised:
                command()
            assert str(raised.value).startswith("invalid password: ")
            assert secret not in str(raised.value)
    with pytest.raises(ValidationError) as raised:
        world.led.grant_role("x" * 1000, "admin", actor=ADMIN)
    assert len(str(raised.value)) < 150
    assert stored_state(world.led) == before


@pytest.mark.parametrize(
    ("command", "said"),
    [
        (
            lambda w: w.led.create_user("ann", account_id=w.acme, actor=ADMIN),
            "invalid email 'ann': An email address must have an @-sign.",
        ),
        (lambda w: w.led.create_account("  ", actor=ADMIN), "must not be empty"),
        (lambda w: w.led.create_account(5, actor=ADMIN), "invalid account name 5: must be text"),
        (lambda w: annotation(w, content="c" * 1025), "must have at most 1024 characters"),
        (lambda w: annotation(w, type="note"), "must be one of 'alert', 'holiday'"),
        (lambda w: annotation(w, start="soon"), "must be a date and time with a UTC offset"),
        (
            lambda w: w.led.create_account(
                "X", primary_color="red", secondary_color="blue", actor=ADMIN
            ),
            "invalid primary_color 'red': must be a colour as #RRGGBB",
        ),
    ],
)
def test_messages_are_in_the_projects_words(
    world: World, command: Callable[[World], Any], said: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        command(world)
    message = str(raised.value)
    assert said in message
    for pydantic_words in ("Value error", "Input should", "String should"):
        assert pydantic_words not in message


def test_roles_must_be_a_list_not_one_name(world: World) -> None:
    before = stored_state(world.led)
    for command in (
        lambda: world.led.create_user(
            "x@example.org", account_id=world.acme, actor=ADMIN, roles="admin"
        ),
        lambda: world.led.create_account("New", actor=ADMIN, roles="Consultancy"),
        lambda: world.led.create_account("New", actor=ADMIN, roles=5),
    ):
        with pytest.raises(ValidationError, match=r"invalid roles .*must be a list"):
            command()
    assert stored_state(world.led) == before


@pytest.mark.parametrize(
    "moment",
    [
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))),
        datetime(9999, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=-1))),
    ],
)
def test_a_moment_without_a_utc_equivalent_is_one_clear_error(world: World, moment: Any) -> None:
    with pytest.raises(
        ValidationError, match=r"^invalid at .*: out of range when converted to UTC$"
    ):
        valid(Moment, moment, "at")
    before = stored_state(world.led)
    with pytest.raises(ValidationError, match=r"^invalid at "):
        world.led.record_login(world.ann, at=moment)
    with pytest.raises(ValidationError, match=r"^invalid start "):
        annotation(world, start=moment)
    assert stored_state(world.led) == before


# -- a user's email wherever a user id is taken -------------------------------------------------


def test_the_write_side_takes_a_users_email_wherever_it_takes_a_user_id(world: World) -> None:
    led, ann, email = world.led, world.ann, "Ann@Example.org"
    assert led.grant_role(email, "admin", actor=ADMIN) is True
    assert led.revoke_role(email, "admin", actor=ADMIN) is True
    assert led.update_user(email, timezone="UTC", actor=ADMIN) is True
    assert led.record_login(email, at=T0) is True
    assert led.record_last_seen(email, at=T0) is True
    assert led.set_password(email, "correct horse", actor=ADMIN) is True
    assert led.deactivate_user(email, actor=ADMIN) is True
    assert led.reactivate_user(email, actor=ADMIN) is True
    annotation(world, source=email)
    user = led.repository.get(ann)
    assert isinstance(user, User)
    assert (user.timezone, user.login_count, user.active) == ("UTC", 1, True)
    assert led.erase_user(email, actor=ADMIN, reason="GDPR request") is True

    before = stored_state(led)
    for command in (
        lambda: led.grant_role("nobody@example.org", "admin", actor=ADMIN),
        lambda: led.record_login("nobody@example.org"),
        lambda: led.deactivate_user("nobody@example.org", actor=ADMIN),
    ):
        with pytest.raises(NotFound, match=r"^user 'nobody@example.org' not found$"):
            command()
    assert stored_state(led) == before


def test_an_annotation_source_given_as_a_users_email_is_that_user(
    world: World, rm: ReadModel
) -> None:
    annotation(world, source="ann@example.org")
    annotation(world, content="From a team", source="ops@team")  # no user: a source name
    rm.catch_up()
    sources = {a.content: a.source for a in rm.search_annotations(world.acme)}
    assert sources == {"Maintenance": world.ann, "From a team": "ops@team"}


def test_the_read_side_takes_a_users_email_wherever_it_takes_a_user_id(
    world: World, rm: ReadModel
) -> None:
    world.led.grant_role(world.ann, "admin", actor=ADMIN)
    annotation(world, source=world.ann)
    rm.catch_up()
    email = "ANN@example.org"
    assert rm.has_role(email, "admin") and rm.has_role(email, "admin", at=datetime.now(UTC))
    assert rm.roles(email) == {"admin"} and rm.is_active(email)
    found = rm.get_user(email)
    assert found is not None and found.id == world.ann
    assert [a.content for a in rm.search_annotations(world.acme, source=email)] == ["Maintenance"]
    assert set(rm.audit_log(email)["event"]) >= {"UserCreated", "RoleGranted"}
    nobody = "nobody@example.org"
    assert not rm.has_role(nobody, "admin") and rm.roles(nobody) == set()
    assert not rm.is_active(nobody) and rm.get_user(nobody) is None
    assert rm.audit_log(nobody).empty


def test_a_database_url_in_an_error_never_shows_its_password() -> None:
    for url in (
        "mysql://ann:hunter2pw@db.example/x",
        "postgresql+psycopg://ann:hunter2pw@db.example/",
        "postgresql+pg8000://ann:hunter2pw@db.example/x",
    ):
        with pytest.raises(ValidationError) as raised:
            Ledger(url)
        assert "hunter2pw" not in str(raised.value) and "***" in str(raised.value)


@pytest.mark.parametrize("value", ["abc", "-1", "2.5", "x" * 10_000])
def test_a_bad_last_seen_resolution_is_named(
    url: str, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("LEDGER_LAST_SEEN_RESOLUTION", value)
    with pytest.raises(ValidationError, match="LEDGER_LAST_SEEN_RESOLUTION must be") as raised:
        Ledger(url)
    assert len(str(raised.value)) < 200
