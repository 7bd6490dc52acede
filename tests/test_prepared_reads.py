"""The hot read path (prepared statements on each thread's own connection): many threads, a
dropped connection, and closing."""

from __future__ import annotations

import gc
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import DateTime, case, func, literal, literal_column, select, union_all
from sqlalchemy.dialects import sqlite

from ledger import Ledger
from projections import ReadModel
from projections.tables import UTCDateTime
from tests.conftest import ADMIN, create_pg_database


@pytest.fixture
def granted(led: Ledger, acme: UUID, rm: ReadModel) -> UUID:
    user = led.create_user("ada@acme.example", account_id=acme, roles=["consultant"], actor=ADMIN)
    rm.catch_up()
    return user


def test_more_threads_than_the_pool_holds_all_get_answers(rm: ReadModel, granted: UUID) -> None:
    answers: list[bool] = []
    barrier = threading.Barrier(40, timeout=120)

    def ask() -> None:
        barrier.wait()  # every thread holds its connection at the same time
        answers.append(rm.has_role(granted, "consultant"))

    threads = [threading.Thread(target=ask) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert answers == [True] * 40
    gc.collect()
    assert len(rm.reader._connections) == 0  # each thread's connection went with its thread
    assert rm.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


def test_a_connection_dropped_by_the_server_is_replaced(postgres_server: str) -> None:
    url, drop = create_pg_database(postgres_server)
    led, rm = Ledger(url), ReadModel(url)
    try:
        acme = led.create_account("Acme", actor=ADMIN)
        led.define_role("consultant", actor=ADMIN)
        user = led.create_user(
            "ada@acme.example", account_id=acme, roles=["consultant"], actor=ADMIN
        )
        rm.catch_up()
        assert rm.has_role(user, "consultant")
        with psycopg.connect(postgres_server, autocommit=True) as admin:
            ended = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (rm.engine.url.database,),
            ).fetchone()
        assert ended is not None and ended[0] >= 1
        assert rm.has_role(user, "consultant")
        assert rm.roles(user) == {"consultant"}
        with psycopg.connect(postgres_server, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (rm.engine.url.database,),
            )
        found = rm.get_user_with_account(user)  # two statements in one pipeline
        assert found is not None and found[0].roles == ["consultant"] and found[2] is not None
    finally:
        rm.close()
        led.close()
        drop()


def test_a_user_and_their_account_read_together_answer_as_read_apart(
    led: Ledger, acme: UUID, rm: ReadModel, granted: UUID
) -> None:
    globex = led.create_account("Globex", actor=ADMIN, roles=["Consultancy"])
    bob = led.create_user("bob@acme.example", account_id=acme, actor=ADMIN, roles=["admin"])
    led.grant_role(bob, "consultant", actor=ADMIN, until=datetime.now(UTC) + timedelta(days=2))
    carl = led.create_user("carl@acme.example", account_id=acme, actor=ADMIN)
    led.move_user(carl, globex, actor=ADMIN)
    dan = led.create_user("dan@acme.example", account_id=acme, actor=ADMIN, roles=["admin"])
    led.erase_user(dan, actor=ADMIN, reason="asked to")
    rm.catch_up()
    for user in (granted, bob, carl, dan, UUID(int=7)):
        apart = rm.get_user_and_role_ends(user)
        together = rm.get_user_with_account(user)
        if apart is None:
            assert together is None
            continue
        assert together == (*apart, rm.get_account(apart[0].account_id))


def test_answers_follow_new_events(led: Ledger, rm: ReadModel, granted: UUID) -> None:
    assert rm.has_role(granted, "consultant")
    led.revoke_role(granted, "consultant", actor=ADMIN)
    rm.catch_up()
    assert not rm.has_role(granted, "consultant")  # autocommit: no stale snapshot is held


def test_a_query_that_fails_leaves_the_reader_usable(
    led: Ledger, rm: ReadModel, granted: UUID
) -> None:
    """A statement refused, or failing on its second row after the first was read, leaves the
    thread's connection answering, with nothing half-read (on SQLite that would hold a
    snapshot and hide new events)."""
    refused = select(literal_column("no_such_column"))
    failing = select(
        func.json(case((literal_column("n") == 2, literal("{bad")), else_=literal("1")))
    ).select_from(
        union_all(select(literal(1).label("n")), select(literal(2).label("n"))).subquery()
    )
    assert rm.has_role(granted, "consultant")
    for statement in (refused, failing) if rm.engine.dialect.name == "sqlite" else (refused,):
        with pytest.raises(Exception):  # noqa: B017 (the driver's own error)
            rm.reader.all(statement, {})
        assert rm.has_role(granted, "consultant")
        led.revoke_role(granted, "consultant", actor=ADMIN)
        rm.catch_up()
        assert not rm.has_role(granted, "consultant")  # no stale snapshot held
        led.grant_role(granted, "consultant", actor=ADMIN)
        rm.catch_up()
        assert rm.has_role(granted, "consultant")


def test_close_releases_every_thread_connection(url: str, granted: UUID) -> None:
    model = ReadModel(url)
    assert model.has_role(granted, "consultant")
    held = list(model.reader._connections)
    assert held
    model.close()
    assert not model.reader._connections
    closed = sqlite3.ProgrammingError if url.startswith("sqlite") else psycopg.OperationalError
    with pytest.raises(closed, match="closed"):
        held[0].connection.cursor().execute("SELECT 1")
    assert model.has_role(granted, "consultant")  # usable again, on a fresh connection
    model.close()


def test_source_lists_of_any_length_compile_few_statements(
    led: Ledger, acme: UUID, rm: ReadModel
) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for source in ("a", "b", "c"):
        led.add_annotation(
            acme,
            content=source,
            start=start,
            end=start + timedelta(hours=1),
            source=source,
            actor=ADMIN,
        )
    rm.catch_up()
    for length in range(1, 41):
        sources = ["a", *(f"nobody-{i}" for i in range(length - 1))]
        assert [a.content for a in rm.search_annotations(acme, source=sources)] == ["a"]
    assert len(rm.reader._statements._compiled) <= 8  # lengths 1, 2, 4, ... 64


@given(
    moment=st.datetimes(
        min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.timezones()
    )
)
def test_sqlite_times_are_stored_as_sqlalchemy_stores_them(moment: datetime) -> None:
    """UTCDateTime's own SQLite text must equal SQLAlchemy's, or range filters would compare
    unlike strings; and it must read back as the same instant, in UTC."""
    dialect = sqlite.dialect()
    ours = UTCDateTime().bind_processor(dialect)
    theirs = DateTime().dialect_impl(dialect).bind_processor(dialect)
    assert ours is not None and theirs is not None
    text = ours(moment)
    assert text == theirs(moment.astimezone(UTC).replace(tzinfo=None))
    read = UTCDateTime().result_processor(dialect, None)
    assert read is not None
    assert read(text) == moment.astimezone(UTC) and read(text).tzinfo is UTC


def test_a_login_time_stored_with_its_offset_still_reads(tmp_path: Path) -> None:
    """Before 2026-11-29 the projector wrote users.last_login_at on SQLite as
    '2026-01-03 00:00:00+00:00'; read models built then still answer."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    led = Ledger(url)
    rm = ReadModel(url)
    try:
        led.define_role("admin", actor=ADMIN)
        acme = led.create_account("Acme", actor=ADMIN)
        ann = led.create_user("ann@example.org", account_id=acme, actor=ADMIN)
        led.record_login(ann, at=datetime(2026, 1, 3, tzinfo=UTC))
        rm.catch_up()
        login = rm.get_user(ann)
        assert login is not None and login.last_login_at == datetime(2026, 1, 3, tzinfo=UTC)
        with rm.engine.begin() as conn:
            conn.exec_driver_sql(
                "UPDATE users SET last_login_at = '2026-01-03 00:00:00+00:00' WHERE id = ?",
                (ann.hex,),
            )
        old = rm.get_user(ann)
        assert old is not None and old.last_login_at == datetime(2026, 1, 3, tzinfo=UTC)
        assert old.last_login_at.tzinfo is UTC
    finally:
        rm.close()
        led.close()
