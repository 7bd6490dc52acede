"""`search_annotations` against a plain SQLAlchemy ORM query over the same table: random
annotations (removed ones among them, sources by name and by user, erased and moved users),
random windows and belief bounds (on and beside the annotations' own instants), random source
filters; the same models, field for field and type for type, in the same order."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import or_, select
from sqlalchemy.orm import DeclarativeBase, Session

from ledger import Ledger
from projections import ReadModel
from projections import tables as t
from projections.models import AnnotationModel
from tests.conftest import ADMIN

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NAMES = ["calendar", "bench", "monitoring", "a b", "nobody@nowhere.org"]
TYPES = ["label", "alert", "holiday"]
US = timedelta(microseconds=1)
ZONES = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]


class _Base(DeclarativeBase):
    pass


class Annotation(_Base):
    __table__ = t.annotations


@dataclass
class World:
    led: Ledger
    rm: ReadModel
    users: dict[str, UUID]  # by email: ann (active), carl (moved), bob (erased)


@pytest.fixture
def world(led: Ledger, rm: ReadModel) -> World:
    for role in ("admin", "consultant"):
        led.define_role(role, actor=ADMIN)
    home = led.create_account("Home", actor=ADMIN)
    away = led.create_account("Away", actor=ADMIN)
    users = {
        email: led.create_user(email, account_id=home, actor=ADMIN)
        for email in ("ann@x.org", "bob@x.org", "carl@x.org")
    }
    # bob is a source before his erasure (a user's annotations stay); carl moves away
    led.add_annotation(home, content="b", start=T0, end=T0 + US, source="bob@x.org", actor=ADMIN)
    led.erase_user("bob@x.org", actor=ADMIN, reason="asked")
    led.move_user(users["carl@x.org"], away, actor=ADMIN)
    return World(led, rm, users)


@st.composite
def annotations(draw: st.DrawFn) -> dict[str, Any]:
    start = T0 + timedelta(microseconds=draw(st.integers(0, 10 * 86_400 * 10**6)))
    length = draw(
        st.sampled_from([US, timedelta(seconds=1), timedelta(hours=2), timedelta(days=3)])
    )
    return {
        "content": draw(st.sampled_from(["x", "y", "a longer note"])),
        "start": start,
        "end": start + length,
        "belief_time": draw(st.none() | st.just(start) | st.just(start + timedelta(hours=1))),
        "source": draw(st.sampled_from([*NAMES, "ann@x.org", "carl@x.org"])),
        "type": draw(st.sampled_from(TYPES)),
        "removed": draw(st.booleans()),
    }


def instants(near: list[datetime]) -> st.SearchStrategy[datetime | None]:
    """None, or anywhere in the annotations' days, or an annotation's own instant or one a
    microsecond beside it; in one of three time zones."""
    anywhere = st.integers(-86_400, 11 * 86_400).map(lambda s: T0 + timedelta(seconds=s))
    beside = st.sampled_from(near).flatmap(lambda m: st.sampled_from([m - US, m, m + US]))
    moments = anywhere | beside if near else anywhere
    return st.none() | st.builds(datetime.astimezone, moments, st.sampled_from(ZONES))


# a source by name, email (erased bob's names nobody), id, id's text or user model (an
# unknown user's too), and texts that are none of these
SOURCE_ITEMS = st.sampled_from(
    [
        *NAMES,
        *("ann@x.org", "ANN@x.org", "bob@x.org", "carl@x.org", "", "ann", "stranger"),
        *("id:ann", "id:bob", "id:carl", "id:nobody", "text:ann", "text:carl"),
        *("model:ann", "model:bob"),
    ]
)


def _source(item: str, world: World) -> Any:
    kind, _, who = item.partition(":")
    if not who:
        return item
    user = world.users.get(f"{who}@x.org", uuid4())
    if kind == "id":
        return user
    if kind == "text":
        return str(user)
    return world.rm.get_user(user) or user  # a user model (none for an unknown id)


def plain_search(world: World, account: UUID, **given: Any) -> list[AnnotationModel]:
    """What the search answers, as plainly as the ORM says it."""
    n = Annotation
    query = select(n).where(n.account_id == account, n.removed_at.is_(None))
    if given.get("annotations_after") is not None:
        query = query.where(n.end > given["annotations_after"])
    if given.get("annotations_before") is not None:
        query = query.where(n.start < given["annotations_before"])
    if given.get("beliefs_after") is not None:
        query = query.where(or_(n.belief_time.is_(None), n.belief_time > given["beliefs_after"]))
    if given.get("beliefs_before") is not None:
        query = query.where(or_(n.belief_time.is_(None), n.belief_time <= given["beliefs_before"]))
    if "source" in given and given["source"] is not None:
        wanted = given["source"]
        wanted = wanted if isinstance(wanted, list) else [wanted]
        names = [item for item in wanted if isinstance(item, str)]
        user_ids = [world.rm.resolve_user(item) for item in wanted if not isinstance(item, str)]
        for item in names:
            if "@" in item:
                user_ids.append(world.rm.resolve_user(item))
            else:
                with contextlib.suppress(ValueError):
                    user_ids.append(UUID(item))
        query = query.where(or_(n.source_name.in_(names), n.source_user_id.in_(user_ids)))
    with Session(world.rm.engine) as session:
        found = session.scalars(query.order_by(n.start, n.end, n.id)).all()
        return [
            AnnotationModel(
                id=row.id,
                account_id=row.account_id,
                content=row.content,
                start=row.start,
                end=row.end,
                belief_time=row.belief_time,
                source=row.source_user_id or row.source_name,
                type=row.type,
            )
            for row in found
        ]


def exactly(models: list[AnnotationModel]) -> list[tuple[Any, ...]]:
    """Each field's value, type and time zone object: equal datetimes in other zones differ."""
    return [
        tuple((name, value, type(value), getattr(value, "tzinfo", None)) for name, value in model)
        for model in models
    ]


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data(), added=st.lists(annotations(), max_size=8))
def test_search_answers_what_a_plain_orm_query_answers(
    world: World, data: st.DataObject, added: list[dict[str, Any]]
) -> None:
    led, rm = world.led, world.rm
    account = led.create_account(f"Account {uuid4().hex[:8]}", actor=ADMIN)
    for annotation in added:
        fields = {name: value for name, value in annotation.items() if name != "removed"}
        made = led.add_annotation(account, actor=ADMIN, **fields)
        if annotation["removed"]:
            led.remove_annotation(account, made, actor=ADMIN)
    rm.catch_up()
    near = [moment for a in added for moment in (a["start"], a["end"])]
    beliefs = [a["belief_time"] for a in added if a["belief_time"] is not None]
    for _ in range(6):
        given: dict[str, Any] = {
            "annotations_after": data.draw(instants(near)),
            "annotations_before": data.draw(instants(near)),
            "beliefs_after": data.draw(instants(beliefs)),
            "beliefs_before": data.draw(instants(beliefs)),
        }
        choice = data.draw(st.none() | SOURCE_ITEMS | st.lists(SOURCE_ITEMS, max_size=4))
        if choice is not None:
            given["source"] = (
                [_source(item, world) for item in choice]
                if isinstance(choice, list)
                else _source(choice, world)
            )
        expected = plain_search(world, account, **given)
        assert exactly(rm.search_annotations(account, **given)) == exactly(expected), given


def test_one_user_model_is_one_source(world: World) -> None:
    """A user model given alone names that user (it was iterated as a list of its fields)."""
    led, rm = world.led, world.rm
    home = led.resolve_account("Home")
    made = led.add_annotation(
        home, content="by ann", start=T0, end=T0 + US, source="ann@x.org", actor=ADMIN
    )
    rm.catch_up()
    ann = rm.get_user("ann@x.org")
    assert [found.id for found in rm.search_annotations(home, source=ann)] == [made]
    assert rm.search_annotations(home, source=ann) == rm.search_annotations(home, source=[ann])
