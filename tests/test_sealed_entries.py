"""An entry of a mirrored system's audit log that the ledger could not interpret can hold
personal data ("Password reset for user ann"): when it concerns a user, its text is sealed with
that user's key, so erasing the user erases it, in the events, the read models, the exports and
replays alike; an entry about nobody is kept in the open."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

from ledger import Ledger
from ledger.audit import Audit
from ledger.domain import ERASED
from projections import ReadModel
from tests.conftest import ADMIN
from tests.helpers import cli, stored_state
from tests.test_erasure_on_disk import on_disk

AT = datetime(2025, 12, 24, 9, 30, tzinfo=UTC)
TEXT = "Password reset for user Quixotic-Zelda-4711"
SOURCE = "flexmeasures://db.example:5432/fm"


def _texts(rm: ReadModel) -> list[str]:
    log = rm.audit_log()
    return list(log[log["event"] == "UnrecognisedEntryRecorded"]["text"])


def _setup(led: Ledger) -> UUID:
    acme = led.create_account("Acme", actor=ADMIN)
    ann = led.create_user("ann@acme.org", account_id=acme, actor=ADMIN)
    assert led.record_unrecognised_entry(SOURCE, 7, TEXT, AT, user=ann, actor=ADMIN) is True
    assert led.record_unrecognised_entry(SOURCE, 8, "Nightly sync ran", AT, actor=ADMIN) is True
    return ann


def test_an_entry_about_a_user_is_sealed_and_erased_with_the_user(
    url: str, led: Ledger, tmp_path: Path
) -> None:
    ann = _setup(led)
    needles = {"text": TEXT.encode(), "open": b"Nightly sync ran"}
    assert on_disk(url, needles) == {"open"}  # sealed from the start
    rm = ReadModel(url)
    try:
        rm.catch_up()
        assert _texts(rm) == [TEXT, "Nightly sync ran"]
        led.erase_user(ann, actor=ADMIN, reason="GDPR request")
        rm.catch_up()
        assert _texts(rm) == [ERASED, "Nightly sync ran"]
        log = rm.audit_log()
        affected = list(log[log["event"] == "UnrecognisedEntryRecorded"]["affected_user_id"])
        assert affected[0] == str(ann) and not isinstance(affected[1], str)
    finally:
        rm.close()
    exported = cli("--db", url, "audit", "export", "--format", "jsonl").stdout
    entries = [json.loads(line) for line in exported.splitlines()]
    kept = [e for e in entries if e.get("event") == "UnrecognisedEntryRecorded"]
    assert [e["text"] for e in kept] == [ERASED, "Nightly sync ran"]
    assert TEXT not in cli("--db", url, "audit", "export", "--format", "ocsf").stdout
    with Audit(url) as audit:
        assert audit.check()[1] == []  # the live read models equal a replay
        out = tmp_path / "then.db"
        audit.replay(datetime.now(UTC), out)
    then = ReadModel(f"sqlite:///{out}")
    try:
        assert _texts(then) == [ERASED, "Nightly sync ran"]
    finally:
        then.close()
    assert TEXT.encode() not in out.read_bytes()


def test_a_replay_in_the_open_made_before_the_erasure_is_blanked_by_it(
    url: str, led: Ledger, tmp_path: Path
) -> None:
    ann = _setup(led)
    out = tmp_path / "open.db"
    rm = ReadModel(f"sqlite:///{out}", source=led, page_size=100)
    try:
        rm.catch_up()
        assert _texts(rm) == [TEXT, "Nightly sync ran"]
        led.erase_user(ann, actor=ADMIN, reason="GDPR request")
        rm.catch_up()
        assert _texts(rm) == [ERASED, "Nightly sync ran"]
    finally:
        rm.close()


def test_an_entry_about_an_erased_user_is_kept_as_erased(url: str, led: Ledger) -> None:
    ann = _setup(led)
    led.erase_user(ann, actor=ADMIN, reason="GDPR request")
    assert led.record_unrecognised_entry(SOURCE, 9, TEXT, AT, user=ann, actor=ADMIN) is True
    assert on_disk(url, {"text": TEXT.encode()}) == set()
    rm = ReadModel(url)
    try:
        rm.catch_up()
        assert _texts(rm) == [ERASED, "Nightly sync ran", ERASED]
    finally:
        rm.close()
    before = stored_state(led)
    assert led.record_unrecognised_entry(SOURCE, 9, TEXT, AT, user=ann, actor=ADMIN) is False
    assert stored_state(led) == before
