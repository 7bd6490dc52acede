"""The shortcuts the command paths take give exactly what the longer way gives."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger import Ledger
from ledger.importer import Importer
from ledger.runner import Runner
from ledger.storage import command_log
from ledger.storage.command_log import CommandLog
from ledger.storage.side_tables import EMAIL, claim_key
from ledger.validation import Moment, valid
from tests.conftest import ADMIN
from tests.helpers import cli

_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text()
    | st.uuids()
    | st.datetimes(timezones=st.just(UTC)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@given(st.text(), st.dictionaries(st.text(), _values, max_size=6))
def test_the_fingerprint_hashes_the_same_canonical_text_as_json_dumps(
    command: str, args: dict[str, object]
) -> None:
    log = CommandLog(None, b"k" * 32)  # type: ignore[arg-type]
    canonical = json.dumps({"command": command, "args": args}, sort_keys=True, default=str)
    expected = hmac.new(b"k" * 32, canonical.encode(), hashlib.sha256).hexdigest()
    assert log.fingerprint(command, args) == expected


@given(st.text(max_size=31))
def test_a_text_shorter_than_32_characters_never_names_an_id(text: str) -> None:
    with pytest.raises(ValueError):
        UUID(text)


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC),
        datetime(2026, 3, 1, 13, 30, tzinfo=timezone(timedelta(hours=1))),
        datetime(2026, 3, 1, 12, 30, tzinfo=timezone(timedelta(0), "Z")),  # UTC, not `UTC`
    ],
)
def test_a_command_s_time_is_the_clock_s_time_validated(moment: datetime) -> None:
    runner = Runner.__new__(Runner)
    runner.clock = lambda: moment
    meta = runner.meta("cli:test", None, None)
    expected = valid(Moment, moment, "clock time")
    assert meta.timestamp == expected
    assert meta.timestamp.tzinfo is UTC
    assert meta.timestamp.utcoffset() == timedelta(0)


def test_the_clock_time_is_still_refused_when_naive() -> None:
    runner = Runner.__new__(Runner)
    runner.clock = lambda: datetime(2026, 3, 1)
    with pytest.raises(Exception, match="clock time"):
        runner.meta("cli:test", None, None)


def test_a_cached_claim_key_is_the_key(led: Ledger) -> None:
    secret = led.claims.secret
    for email in ("Ann@Example.org", "ann@example.org", "bob@example.org"):
        assert led.claims.key(EMAIL, email) == claim_key(secret, EMAIL, email)
        assert led.claims.key(EMAIL, email) == claim_key(secret, EMAIL, email)  # cached


def test_claim_keys_are_kept_no_longer_than_a_command_or_a_batch(
    led: Ledger, acme: UUID, tmp_path: Path
) -> None:
    """Emails are personal data: the keys computed from them are forgotten after each command
    run alone and each batch (another process may erase their user meanwhile), after an
    erasure and an email change too."""
    ann = led.create_user("ann@example.org", account_id=acme, actor=ADMIN)
    assert led.claims._key.cache_info().currsize == 0
    assert led.user_id_for_email("ann@example.org") == ann  # a read: cached until a command
    assert _cached(led, "ann@example.org")
    led.record_login(ann)
    assert led.claims._key.cache_info().currsize == 0
    batch = tmp_path / "batch.jsonl"
    batch.write_text(
        '{"command": "create_user", "email": "bob@example.org", "account": "Acme"}\n'
        '{"command": "record_login", "user": "bob@example.org"}\n'
    )
    cli("--db", led.url, "apply", str(batch))
    summary = Importer(led, actor=ADMIN).apply(
        [(1, '{"command": "record_login", "user": "bob@example.org"}')]
    )
    assert summary.count("applied") == 1
    assert led.claims._key.cache_info().currsize == 0
    bob = led.user_id_for_email("bob@example.org")
    assert bob is not None
    led.update_user(bob, email="robert@example.org", actor=ADMIN)
    assert not _cached(led, "bob@example.org")
    led.erase_user(ann, actor=ADMIN, reason="asked to be forgotten")
    assert led.claims._key.cache_info().currsize == 0
    assert led.user_id_for_email("ann@example.org") is None


def _cached(led: Ledger, email: str) -> bool:
    """Whether the claims' key cache held the email (looking it up caches it)."""
    misses = led.claims._key.cache_info().misses
    led.claims.key(EMAIL, email)
    return led.claims._key.cache_info().misses == misses


@given(st.uuids() | st.booleans() | st.none() | st.text())
def test_a_stored_command_result_is_json_dumps_and_decodes_back(result: object) -> None:
    slow = json.dumps(result if isinstance(result, bool) else {"id": str(result)})
    assert command_log.encode(result) == slow
    if isinstance(result, UUID | bool):
        assert command_log.decode(command_log.encode(result)) == result


def test_events_read_in_bulk_are_the_ones_the_library_reads_one_aggregate_at_a_time(
    led: Ledger,
) -> None:
    """`events_after` (what `preload` reconstructs uncached aggregates from) and the batch
    decoding of its events (keys looked up only for states holding a sealed value) give what
    eventsourcing's own `select_events` and mapper give, personal data opened."""
    account = led.create_account("Acme", actor=ADMIN)
    led.define_role("viewer", actor=ADMIN)
    users = [led.create_user(f"u{n}@x.org", account_id=account, actor=ADMIN) for n in range(3)]
    led.record_login(users[0], ip="192.0.2.7")
    led.grant_role(users[1], "viewer", actor=ADMIN)
    led.record_login(users[1])
    positions = [(users[0], 0), (account, 0), (users[1], 1), (users[2], 9)]
    bulk = led.side.events_after(positions)
    one_by_one = [
        stored
        for aggregate_id, after in positions
        for stored in led.recorder.select_events(aggregate_id, gt=after)
    ]
    assert sorted(bulk, key=lambda e: (str(e.originator_id), e.originator_version)) == sorted(
        one_by_one, key=lambda e: (str(e.originator_id), e.originator_version)
    )
    assert all(type(stored.originator_id) is UUID for stored in bulk)
    led.forget_cached_keys()
    decoded = led.to_domain_events(bulk)
    assert [vars(e) for e in decoded] == [vars(led.mapper.to_domain_event(s)) for s in bulk]
    assert {getattr(e, "email", None) for e in decoded} == {"u0@x.org", None}
    assert "192.0.2.7" in {getattr(e, "ip", None) for e in decoded}
