"""Audit out through the read API: FlexMeasures' audit-log routes (paging, search terms, sorting,
changes described with old and new values), unknown query parameters refused on every route,
and the change feed (cursor, long-poll, access filtering, a restarting consumer)."""

from __future__ import annotations

import random
import re
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from projections import ReadModel
from projections.api import create_app
from tests import test_api
from tests.conftest import ADMIN
from tests.test_api import CALLER_EMAIL, PASSWORD, World

# the read API's worlds (tests/test_api.py), used here by name
template = test_api.template
shared_world = test_api.shared_world
world = test_api.world
fresh_world = test_api.fresh_world

FEED = "/api/v3_0/auditlog/changes"


def _username(world: World, name: str) -> str:
    return str(world.get(f"/api/v3_0/users/{world.users[name]}", "admin").json()["username"])


def _audit_rows(url: str) -> list[dict[str, Any]]:
    """Every domain event's position, aggregate and account (the account, or the user's), from
    the read models' audit log, oldest first."""
    rm = ReadModel(url)
    try:
        rm.catch_up()
        rows = []
        for row in rm.audit_log().itertuples():
            account = None
            if row.aggregate_type == "Account":
                account = row.aggregate_id
            elif row.aggregate_type == "User":
                user = rm.get_user(row.aggregate_id)
                account = user.account_id if user else None
            rows.append(
                {
                    "position": int(row.position),
                    "aggregate_id": row.aggregate_id,
                    "account": account,
                }
            )
        return rows
    finally:
        rm.close()


def _feed(world: World, caller: str, **params: Any) -> dict[str, Any]:
    response = world.get(FEED, caller, **params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _read_all(world: World, caller: str, after: int = 0, limit: int = 7) -> tuple[list[int], int]:
    """The positions the feed gives the caller from `after` to its end, and the last cursor."""
    seen: list[int] = []
    while True:
        body = _feed(world, caller, after=after, limit=limit)
        seen += [change["position"] for change in body["changes"]]
        assert body["next"] >= after
        if body["next"] == after:
            return seen, after
        after = body["next"]


# -- the audit-log routes ---------------------------------------------------------------------


def test_a_user_audit_log_pages_searches_and_sorts_as_flexmeasures(fresh_world: World) -> None:
    world = fresh_world
    plain, boss = world.users["client_plain"], world.users["client_admin"]
    world.led.update_user(plain, timezone="UTC", actor=str(boss))
    world.led.grant_role(plain, "account-admin", actor=ADMIN, reason="JIRA-7")
    world.led.revoke_role(plain, "account-admin", actor=str(boss))
    path = f"/api/v3_0/users/{plain}/auditlog"
    name, boss_name = _username(world, "client_plain"), _username(world, "client_admin")

    everything = world.get(path, "client_admin").json()
    assert [(e["event"], e["active_user_name"]) for e in everything] == [
        (f"User {name} created in account 'Client'", ADMIN),
        (f"Password changed for user {name}", ADMIN),
        (f"Login recorded for user {name}", name),
        (f"Timezone changed from 'Europe/Amsterdam' to 'UTC' for user {name}", boss_name),
        (f"Role 'account-admin' added to user {name}", ADMIN),
        (f"Role 'account-admin' removed from user {name}", boss_name),
    ]
    # the login's actor is the user (an id): shown by username where the caller reads them
    assert everything[2]["active_user_id"] == str(plain)
    assert everything[4]["reason"] == "JIRA-7" and everything[4]["event_type"] == "RoleGranted"
    assert {(e["affected_user_id"], e["affected_account_id"]) for e in everything} == {
        (str(plain), str(world.accounts["client"]))
    }

    page = world.get(path, "client_admin", page=2, per_page=2).json()
    assert page == {"data": everything[2:4], "num-records": 6, "filtered-records": 6}
    assert world.get(path, "client_admin", page=2, **{"per-page": 2}).json() == page
    # the current name wins over the legacy one
    assert world.get(path, "client_admin", page=2, per_page=5, **{"per-page": 2}).json() == page
    assert world.get(path, "client_admin", page=9).json() == {
        "data": [],
        "num-records": 6,
        "filtered-records": 6,
    }
    # search terms: any of them, in the event or in the active user's name, case-insensitively
    assert world.get(path, "client_admin", filter="TIMEZONE").json() == [everything[3]]
    assert world.get(path, "client_admin", filter="timezone removed").json() == [
        everything[3],
        everything[5],
    ]
    assert world.get(path, "client_admin", filter="test-admin").json() == [
        everything[0],
        everything[1],
        everything[4],
    ]
    assert world.get(path, "client_admin", filter="'added to'").json() == [everything[4]]
    assert world.get(path, "client_admin", filter="").json() == everything
    # a quote left open is a character of its term, as in O'Brien
    assert world.get(path, "client_admin", filter="nobody's role").json() == [
        everything[4],
        everything[5],
    ]
    filtered = world.get(path, "client_admin", page=1, per_page=1, filter="role").json()
    assert filtered == {"data": [everything[4]], "num-records": 6, "filtered-records": 2}
    newest_first = world.get(path, "client_admin", sort_by="event_datetime", sort_dir="desc")
    assert newest_first.json() == everything[::-1]
    assert (
        world.get(path, "client_admin", **{"sort-by": "event_datetime", "sort-dir": "desc"}).json()
        == everything[::-1]
    )
    assert world.get(path, "client_admin", sort_by="event_datetime").json() == everything


def test_an_account_audit_log_holds_its_members_changes(fresh_world: World) -> None:
    world = fresh_world
    led, client, seita = world.led, world.accounts["client"], world.accounts["seita"]
    member = world.users["client_member"]
    led.grant_role(member, "consultant", actor=ADMIN)
    led.update_account(
        client, name="Client BV", primary_color="#112233", secondary_color="#445566", actor=ADMIN
    )
    led.set_consultancy(client, None, actor=ADMIN)
    log = world.get(f"/api/v3_0/accounts/{client}/auditlog", "client_admin").json()
    events = [entry["event"] for entry in log]
    member_name = _username(world, "client_member")
    assert f"Role 'consultant' added to user {member_name}" in events
    [grant] = [
        e for e in log if e["event_type"] == "RoleGranted" and e["affected_user_id"] == str(member)
    ]
    assert grant["affected_account_id"] == str(client)
    assert events[-2:] == [
        "Name changed from 'Client' to 'Client BV', primary color changed from None to "
        "'#112233', secondary color changed from None to '#445566' for account 'Client BV'",
        # the consultancy by id: its name is another tenant's
        f"Consultancy changed from '{seita}' to None for account 'Client BV'",
    ]
    assert events[0] == "Account 'Client' created"
    assert "Seita" not in str(log)
    # the member's grant is not in another account's log
    other = world.get(f"/api/v3_0/accounts/{seita}/auditlog", "admin").json()
    assert all(e["affected_user_id"] != str(member) for e in other)
    paged = world.get(f"/api/v3_0/accounts/{client}/auditlog", "admin", page=1, per_page=3).json()
    assert paged == {"data": log[:3], "num-records": len(log), "filtered-records": len(log)}


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"page": "0"}, "page '0'"),
        ({"page": "x"}, "page 'x'"),
        ({"page": "1", "per_page": "0"}, "per_page '0'"),
        ({"page": "1", "per-page": "1001"}, "per-page '1001'"),
        ({"sort_by": "email"}, "sort_by 'email': must be one of 'event_datetime'"),
        ({"sort-by": "event_datetime", "sort-dir": "up"}, "sort-dir 'up'"),
        ({"sort_dir": "sideways"}, "sort_dir 'sideways'"),
        ({"filter": "x" * 501}, "filter 'xxxx"),
        ({"pag": "1"}, "unknown query parameter 'pag'"),
        ({"sortby": "event_datetime"}, "unknown query parameter 'sortby'"),
    ],
)
def test_bad_audit_log_parameters_are_refused(
    world: World, params: dict[str, str], named: str
) -> None:
    for path in (
        f"/api/v3_0/users/{world.users['client_plain']}/auditlog",
        f"/api/v3_0/accounts/{world.accounts['client']}/auditlog",
    ):
        response = world.get(path, "admin", **params)
        assert response.status_code == 422, (path, params, response.text)
        body = response.json()
        assert set(body) == {"message", "status"} and body["status"] == "UNPROCESSABLE_ENTITY"
        assert named in body["message"] and "\n" not in body["message"]


def test_every_route_refuses_an_unknown_query_parameter(world: World) -> None:
    """Each route of the API document, whatever else it is given."""
    names = {"id": str(world.users["client_plain"]), "name": "consultant"}
    paths = world.client.get("/openapi.json").json()["paths"]
    assert len(paths) >= 12
    headers = {"Authorization": world.tokens["admin"] or ""}
    for template_path, operations in paths.items():
        path = template_path.format(**names)
        if path.startswith("/api/v3_0/accounts/"):
            path = path.replace(names["id"], str(world.accounts["client"]))
        for method in operations:
            response = world.client.request(
                method.upper(),
                path,
                params={"bogus": "1"},
                headers=headers,
                json={"email": CALLER_EMAIL["client_plain"], "password": PASSWORD},
            )
            assert response.status_code == 422, (method, path, response.text)
            assert response.json()["message"].startswith("unknown query parameter 'bogus'")


# -- the change feed ----------------------------------------------------------------------


def test_the_feed_gives_an_admin_every_event_once_in_log_order(world: World) -> None:
    expected = [row["position"] for row in _audit_rows(world.url)]
    for caller in ("admin", "reader"):
        for limit in (1, 4, 1000):
            seen, cursor = _read_all(world, caller, limit=limit)
            assert seen == expected
            assert cursor == world.led.recorder.max_notification_id()
    first = _feed(world, "admin", limit=3)
    assert [c["position"] for c in first["changes"]] == expected[:3]
    assert first["next"] == expected[2]
    change = first["changes"][0]
    assert set(change) >= {
        "position",
        "event",
        "event_type",
        "event_datetime",
        "active_user_name",
        "active_user_id",
        "aggregate_type",
        "aggregate_id",
        "affected_user_id",
        "affected_account_id",
        "reason",
    }
    # `after` is exclusive
    assert [
        c["position"] for c in _feed(world, "admin", after=expected[1], limit=1)["changes"]
    ] == [expected[2]]


def test_others_see_only_the_events_of_the_logs_they_may_read(world: World) -> None:
    rows = _audit_rows(world.url)
    head = world.led.recorder.max_notification_id()
    accounts = world.accounts
    expected_accounts = {
        "client_admin": {accounts["client"]},
        "consultant": {accounts["client"]},  # the client it advises, not its own account's log
        "rival": {accounts["foreign"]},
        "client_plain": set(),
        "seita_plain": set(),
        "platform_consultant": set(),
    }
    for caller, readable in expected_accounts.items():
        me = world.users[caller]
        expected = [
            r["position"] for r in rows if r["account"] in readable or r["aggregate_id"] == me
        ]
        seen, cursor = _read_all(world, caller, limit=3)
        assert seen == expected, caller
        assert expected  # everyone sees their own user's events at least
        # the cursor moves past what the caller may not read, to the end of the log
        assert cursor == head, caller
    for caller in ("inactive", "no_token", "expired", "forged"):
        assert world.get(FEED, caller).status_code == 401


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"after": "-1"}, "after '-1'"),
        ({"after": "abc"}, "after 'abc'"),
        ({"after": "1.5"}, "after '1.5'"),
        ({"after": str(2**63)}, "after '9223372036854775808'"),
        ({"after": "100000"}, "invalid after 100000: the log's last position is"),
        ({"limit": "0"}, "limit '0'"),
        ({"limit": "1001"}, "limit '1001'"),
        ({"wait": "-1"}, "wait '-1'"),
        ({"wait": "61"}, "wait '61'"),
        ({"wait": "nan"}, "wait 'nan'"),
        ({"wait": "inf"}, "wait 'inf'"),
        ({"wait": "1e400"}, "wait '1e400'"),
        ({"cursor": "3"}, "unknown query parameter 'cursor'"),
    ],
)
def test_bad_feed_parameters_are_refused(world: World, params: dict[str, str], named: str) -> None:
    response = world.get(FEED, "admin", **params)
    assert response.status_code == 422, response.text
    body = response.json()
    assert set(body) == {"message", "status"}
    assert named in body["message"] and "\n" not in body["message"]


def test_a_long_poll_answers_with_what_is_recorded_while_it_waits(fresh_world: World) -> None:
    world = fresh_world
    head = world.led.recorder.max_notification_id()
    started = time.monotonic()
    idle = _feed(world, "client_admin", after=head, wait=0.6)
    assert idle == {"changes": [], "next": head}
    assert time.monotonic() - started >= 0.6

    answers: list[dict[str, Any]] = []
    waiting = threading.Thread(
        target=lambda: answers.append(_feed(world, "client_admin", after=head, wait=20))
    )
    started = time.monotonic()
    waiting.start()
    time.sleep(0.5)
    # first an event the caller may not read (the cursor moves past it), then one they may
    world.led.grant_role(world.users["seita_member"], "consultant", actor=ADMIN)
    world.led.grant_role(world.users["client_member"], "consultant", actor=ADMIN)
    waiting.join(25)
    elapsed = time.monotonic() - started
    [answer] = answers
    assert elapsed < 10
    assert [c["event_type"] for c in answer["changes"]] == ["RoleGranted"]
    assert answer["changes"][0]["affected_user_id"] == str(world.users["client_member"])
    assert answer["next"] == head + 2 == answer["changes"][0]["position"]


def test_a_waiting_caller_deactivated_meanwhile_gets_401(fresh_world: World) -> None:
    world = fresh_world
    head = world.led.recorder.max_notification_id()
    answers: list[int] = []
    waiting = threading.Thread(
        target=lambda: answers.append(
            world.get(FEED, "client_plain", after=head, wait=20).status_code
        )
    )
    waiting.start()
    time.sleep(0.5)
    world.led.deactivate_user(world.users["client_plain"], actor=ADMIN)
    waiting.join(25)
    assert answers == [401]


def test_a_consumer_restarting_from_its_cursor_sees_every_event_exactly_once(
    fresh_world: World,
) -> None:
    """A writer records changes while a consumer follows with long-polls; the consumer keeps its
    cursor with what it processed and is restarted (a new server and client) at random."""
    world = fresh_world
    start = world.led.recorder.max_notification_id()
    members = [world.users[f"{name}_member"] for name in ("seita", "client", "foreign")]
    done = threading.Event()

    def write() -> None:
        chooser = random.Random(7)
        for _ in range(12):  # a grant and its revocation: each records one event
            user = chooser.choice(members)
            for change in (world.led.grant_role, world.led.revoke_role):
                assert change(user, "consultant", actor=ADMIN)
                time.sleep(chooser.uniform(0, 0.15))
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    chooser = random.Random(11)
    processed: list[int] = []
    cursor = start
    client = world.client
    restarts = 0
    try:
        while True:
            if chooser.random() < 0.2:  # restart: a new server, the kept cursor
                if client is not world.client:
                    client.app.state.services.close()  # type: ignore[attr-defined]
                client = TestClient(create_app(world.url))
                restarts += 1
            response = client.get(
                FEED,
                headers={"Authorization": world.tokens["admin"] or ""},
                params={"after": cursor, "limit": chooser.randint(1, 4), "wait": 1},
            )
            assert response.status_code == 200, response.text
            body = response.json()
            processed += [change["position"] for change in body["changes"]]
            cursor = body["next"]  # kept together with what was processed
            if done.is_set() and cursor == world.led.recorder.max_notification_id():
                break
    finally:
        writer.join()
        if client is not world.client:
            client.app.state.services.close()  # type: ignore[attr-defined]
    expected = [r["position"] for r in _audit_rows(world.url) if r["position"] > start]
    assert len(expected) == 24
    assert processed == expected
    assert restarts > 0


def test_bookkeeping_records_are_not_events_of_the_feed(fresh_world: World) -> None:
    """A command with a command id writes its id, claims and chain link beside its event: the
    feed holds the one event."""
    world = fresh_world
    head = world.led.recorder.max_notification_id()
    user = world.led.create_user(
        "new@client.example",
        account_id=world.accounts["client"],
        actor=ADMIN,
        command_id="onboard-new",
    )
    world.led.create_user(
        "new@client.example",
        account_id=world.accounts["client"],
        actor=ADMIN,
        command_id="onboard-new",
    )
    body = _feed(world, "admin", after=head)
    assert sorted(c["event_type"] for c in body["changes"]) == ["UserCreated", "UserJoined"]
    assert {UUID(c["aggregate_id"]) for c in body["changes"]} == {user, world.accounts["client"]}
    assert body["next"] == world.led.recorder.max_notification_id()


def test_an_erased_user_s_personal_data_leaves_every_description(fresh_world: World) -> None:
    """Old and new values included: the audit log and the feed show them as erased."""
    world = fresh_world
    member = world.users["client_member"]
    world.led.update_user(
        member, email="renamed@client.example", username="secret.name", actor=ADMIN
    )
    world.led.erase_user(member, actor=ADMIN, reason="GDPR")
    log = world.get(f"/api/v3_0/users/{member}/auditlog", "admin")
    account_log = world.get(f"/api/v3_0/accounts/{world.accounts['client']}/auditlog", "admin")
    feed = world.get(FEED, "admin", limit=1000).text
    for text in (log.text, account_log.text, feed):
        for personal in ("member@client.example", "renamed@client.example", "secret.name"):
            assert personal not in text
    assert any(e["event_type"] == "UserUpdated" for e in log.json())


def test_the_list_routes_take_flexmeasures_per_page_too(world: World) -> None:
    for path in ("/api/v3_0/users", "/api/v3_0/accounts"):
        legacy = world.get(path, "admin", page=1, per_page=2).json()
        current = world.get(path, "admin", page=1, **{"per-page": 2}).json()
        assert current == legacy and len(current["data"]) == 2


def test_a_parameter_given_twice_is_refused_unless_it_takes_several(world: World) -> None:
    headers = {"Authorization": world.tokens["admin"] or ""}
    client = world.accounts["client"]
    for url in (
        f"{FEED}?after=1&after=2",
        "/api/v3_0/users?page=1&page=2",
        f"/api/v3_0/users/{world.users['client_plain']}/auditlog?sort-dir=asc&sort-dir=desc",
    ):
        response = world.client.get(url, headers=headers)
        assert response.status_code == 422, url
        assert response.json()["message"].endswith("given 2 times: give it once")
    several = world.client.get(
        f"/api/v3_0/accounts/{client}/annotations?source=a&source=b", headers=headers
    )
    assert several.status_code == 200 and several.json() == []


def test_a_time_limited_grant_its_extension_and_expiry_are_described(fresh_world: World) -> None:
    world = fresh_world
    member = world.users["client_member"]
    name = _username(world, "client_member")
    ends = datetime.now(UTC) + timedelta(seconds=1)
    world.led.grant_role(member, "consultant", actor=ADMIN, until=ends)
    world.led.extend_grant(member, "consultant", ends + timedelta(seconds=0.2), actor=ADMIN)
    time.sleep(max(0.0, (ends - datetime.now(UTC)).total_seconds()) + 0.3)
    assert world.led.expire_grants(actor=ADMIN) == 1
    events = [e["event"] for e in world.get(f"/api/v3_0/users/{member}/auditlog", "admin").json()]
    instant = r"'\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d[^']*'"
    assert re.fullmatch(f"Role 'consultant' added to user {name} until {instant}", events[-3])
    assert re.fullmatch(f"Role 'consultant' of user {name} now ends at {instant}", events[-2])
    assert re.fullmatch(f"Role 'consultant' of user {name} expired at {instant}", events[-1])
