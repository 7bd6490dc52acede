"""The fast read of the log gives exactly what the slow one gave: decoding (orjson, cached
ciphers) the same events as the library's mapper and transcoder, and the export the same
bytes as before (tests/export_reference.py, the export frozen before the fast path), on a log
with every event type and an erased user, on the demo's log, and for awkward values."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import sqlite3
import string
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import JSONTranscoder
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import Ledger
from ledger.audit import export as exporting
from ledger.demo import record_demo
from ledger.storage.settings import StorageError
from ledger.storage.transcoder import FastJSONTranscoder
from tests import export_reference as reference
from tests.test_export import ERASED_EMAIL, history

__all__ = ["history"]  # the fixture, imported for use here


def reference_export(led: Ledger, fmt: str) -> str:
    """The export as it was: events decoded by the library's mapper, lines built and encoded
    by the frozen code."""
    head = led.recorder.max_notification_id() or 0
    notifications = led.recorder.select_notifications(start=1, limit=head + 1)
    links = {
        int(row["position"]): str(row["hash"])
        for row in led.side.select_all(exporting.SELECT_LINKS, (1, head))
    }
    return "".join(
        reference.line(fmt, n.id, links.get(n.id, ""), reference.decode(led, n))
        for n in notifications
    )


def exported(led: Ledger, fmt: str) -> str:
    out = io.StringIO()
    exporting.export(led, out, fmt)
    return out.getvalue()


@pytest.fixture(params=["one process", "workers"])
def processes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The export in this process, or (a log as short as the tests') in the worker processes,
    in pages of a few positions so that the pages' order is put to the test."""
    if request.param == "workers":
        monkeypatch.setattr(exporting, "PARALLEL_FROM", 1)
        monkeypatch.setattr(exporting, "PAGE", 7)
    return str(request.param)


@pytest.mark.parametrize("fmt", ["ocsf", "jsonl"])
def test_export_of_every_event_type_is_what_it_was(
    history: Ledger, fmt: str, processes: str
) -> None:
    expected = reference_export(history, fmt)
    assert ERASED_EMAIL not in expected and "[erased]" in expected  # an erased user in it
    assert exported(history, fmt) == expected


def test_after_and_until_select_the_same_lines_in_workers(
    history: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    head = history.recorder.max_notification_id() or 0
    until = history.to_domain_events(
        history.recorder.select_notifications(start=head // 2, limit=1)
    )[0].timestamp
    here = io.StringIO()
    alone = exporting.export(history, here, "ocsf", after=5, until=until)
    monkeypatch.setattr(exporting, "PARALLEL_FROM", 1)
    monkeypatch.setattr(exporting, "PAGE", 3)
    there = io.StringIO()
    assert exporting.export(history, there, "ocsf", after=5, until=until) == alone
    assert there.getvalue() == here.getvalue()
    assert 0 < alone.events < head - 5 and alone.first == 6


def test_export_of_the_demo_is_what_it_was(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    record_demo(url)
    led = Ledger(url, create=False)
    try:
        expected = {fmt: reference_export(led, fmt) for fmt in ("ocsf", "jsonl")}
        assert expected["ocsf"].count("\n") == led.recorder.max_notification_id()
        for fmt in ("ocsf", "jsonl"):
            assert exported(led, fmt) == expected[fmt]
        monkeypatch.setattr(exporting, "PARALLEL_FROM", 1)  # and in the worker processes
        for fmt in ("ocsf", "jsonl"):
            assert exported(led, fmt) == expected[fmt]
    finally:
        led.close()


def test_decoding_gives_the_librarys_events(history: Ledger) -> None:
    notifications = history.recorder.select_notifications(start=1, limit=10_000)
    fast = history.to_domain_events(notifications)
    slow = [reference.decode(history, n) for n in notifications]
    assert [type(e) for e in fast] == [type(e) for e in slow]
    assert [vars(e) for e in fast] == [vars(e) for e in slow]
    assert any(v == "[erased]" for e in fast for v in vars(e).values())


# -- awkward values: control characters, non-ASCII, floats, integers beyond 64 bits ------------

texts = st.text(st.characters(blacklist_categories=["Cs"]), max_size=12)
leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | texts
    | st.uuids()
    | st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]))
)
values = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)
names = st.text(string.ascii_lowercase, min_size=1, max_size=8)


def transcoders() -> tuple[JSONTranscoder, FastJSONTranscoder]:
    slow, fast = JSONTranscoder(), FastJSONTranscoder()
    for transcoder in (slow, fast):
        Ledger.register_transcodings(Ledger.__new__(Ledger), transcoder)
    return slow, fast


def same(a: Any, b: Any) -> bool:
    """Equal, and of the same types all through (1 == 1.0 == True would hide a difference);
    NaN equal to NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and a != a:
        return b != b
    return bool(a == b)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(names, values, max_size=6))
def test_the_fast_transcoder_decodes_as_the_library_does(state: dict[str, Any]) -> None:
    slow, fast = transcoders()
    stored = slow.encode(state)
    assert fast.encode(state) == stored  # the stored format is the library's
    assert same(fast.decode(stored), slow.decode(stored))
    assert same(fast.decode(stored), fast.decode(stored))  # again: the cached UUIDs


def test_the_fast_transcoder_decodes_odd_documents_as_the_library_does() -> None:
    slow, fast = transcoders()
    for document in (
        b'{"a":NaN,"b":Infinity}',
        b'{"a":"\\ud800"}',
        b'{"a":123456789012345678901234567890}',
        b'[{"_type_":"uuid_hex","_data_":"00000000000000000000000000000001"},1.5]',
        b'"text"',
        b"1e400",
        b'{"_type_":"datetime_iso","_data_":"2026-01-01T00:00:00+00:00","x":1}',
        b'{"a":{"_type_":"uuid_hex","_data_":{"_type_":"uuid_hex","_data_":"0"}}}',
    ):
        try:
            expected = slow.decode(document)
        except Exception as error:  # the library refuses it: so must the fast path, alike
            with pytest.raises(type(error)):
                fast.decode(document)
        else:
            assert same(fast.decode(document), expected), document
    deep = b'{"a":' * 600 + b"1" + b"}" * 600  # deeper than the fast walk goes
    assert fast.decode(deep) == slow.decode(deep)
    deeper = b'{"a":' * 1100 + b"1" + b"}" * 1100  # deeper than either goes
    for document in (b'{"_type_":"nope","_data_":1}', b"{", b'{"a":1', deeper):
        with pytest.raises(Exception) as slow_error:
            slow.decode(document)
        with pytest.raises(type(slow_error.value)):
            fast.decode(document)


class Event:
    """A stand-in event with arbitrary own fields."""

    def __init__(self, own: dict[str, Any]) -> None:
        self.__dict__.update(own)
        self.originator_id = UUID(int=7)
        self.originator_version = 3
        self.timestamp = datetime(2026, 1, 1, tzinfo=UTC)
        self.actor = "cli:ann"
        self.reason = 'why\u0000\u2028"\\'
        self.command_id = None


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(names, values, max_size=6))
def test_export_lines_are_encoded_as_before(own: dict[str, Any]) -> None:
    event = Event(own)
    for fmt in ("ocsf", "jsonl"):
        expected = reference.line(fmt, 12, "ab" * 32, event)
        build = exporting.ocsf.to_ocsf if fmt == "ocsf" else exporting.as_record
        data = (
            build(12, "ab" * 32, event)
            if fmt == "ocsf"
            else build(exporting.Recorded(12, "ab" * 32, event))
        )
        assert exporting.json_line(data, event) == expected
        assert json.loads(expected) is not None


def test_every_character_is_escaped_as_before() -> None:
    everything = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000)
    event = Event({"text": everything})
    data = exporting.as_record(exporting.Recorded(1, "", event))
    assert exporting.json_line(data, event) == reference.line("jsonl", 1, "", event)


def test_a_cipher_made_for_decoding_is_gone_with_the_users_key(led: Ledger) -> None:
    """Decoding makes an AESGCM per key id and keeps it: erasing the user drops it, so the
    very next decode shows the personal data as erased."""
    acme = led.create_account("Acme", actor="cli:admin")
    ann = led.create_user("ann@acme.org", account_id=acme, actor="cli:admin", username="ann")
    head = led.recorder.max_notification_id() or 0
    before = led.to_domain_events(led.recorder.select_notifications(start=1, limit=head))
    assert "ann@acme.org" in [getattr(event, "email", None) for event in before]
    led.erase_user(ann, actor="cli:admin", reason="GDPR")
    after = led.to_domain_events(led.recorder.select_notifications(start=1, limit=head))
    emails = [getattr(event, "email", None) for event in after]
    assert "ann@acme.org" not in emails and "[erased]" in emails


def test_text_waiting_in_stdout_is_not_written_again_by_the_workers(history: Ledger) -> None:
    """The workers are forks: what the caller left in stdout's buffer must not come out twice
    (a fork flushes its copy as it ends; multiprocessing flushes the parent's before forking)."""
    code = (
        "import sys\n"
        "from ledger import Ledger\n"
        "from ledger.audit import export\n"
        "export.PARALLEL_FROM = 1\n"
        "export.PAGE = 5\n"
        "sys.stdout.write('before the export\\n')\n"
        f"export.export(Ledger({history.url!r}, create=False), sys.stdout, 'jsonl')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    lines = result.stdout.splitlines()
    assert lines[0] == "before the export"
    assert lines[1:] == reference_export(history, "jsonl").splitlines()


def test_a_worker_that_cannot_open_the_ledger_leaves_the_rest_to_this_process(
    history: Ledger, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """One worker opens the ledger, the other is refused (a connection limit, say): the
    export is whole and the same, the pages from the refused one on made here."""
    marker = tmp_path / "opened"
    real = exporting.Ledger

    def one_opens(url: str, **kwargs: Any) -> Ledger:
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            raise sqlite3.OperationalError("too many connections") from None
        return real(url, **kwargs)

    monkeypatch.setattr(exporting, "Ledger", one_opens)
    monkeypatch.setattr(exporting, "PARALLEL_FROM", 1)
    monkeypatch.setattr(exporting, "PAGE", 3)
    assert exported(history, "ocsf") == reference_export(history, "ocsf")
    assert marker.exists()


def test_a_database_error_in_a_worker_is_one_line(
    history: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = os.getpid()
    real = exporting._pages

    def failing(led: Ledger, *args: Any) -> Any:
        if os.getpid() != parent:
            raise sqlite3.OperationalError("disk I/O error\nmore lines")
        return real(led, *args)

    monkeypatch.setattr(exporting, "_pages", failing)
    monkeypatch.setattr(exporting, "PARALLEL_FROM", 1)
    with pytest.raises(StorageError, match=r"^database problem: disk I/O error$"):
        exported(history, "jsonl")


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):  # a zombie is gone but for its exit status
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return False


EXPORT_IN_WORKERS = (
    "import sys\n"
    "from ledger.audit import export\n"
    "from ledger.cli import main\n"
    "export.PARALLEL_FROM = 1\n"
    "export.PAGE = 1\n"
    "main(['--db', sys.argv[1], 'audit', 'export', '--format', 'ocsf'])\n"
)


def test_killed_with_9_the_export_leaves_no_worker_running(history: Ledger) -> None:
    """The output is a pipe nobody reads: the export waits to write, its workers to be given
    more pages; then it is killed with -9."""
    export = subprocess.Popen(
        [sys.executable, "-c", EXPORT_IN_WORKERS, history.url],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while len(workers := _children(export.pid)) < exporting.WORKERS:
            assert time.monotonic() < deadline and export.poll() is None
            time.sleep(0.05)
    finally:
        export.kill()
        export.wait()
    _all_end(workers)


def _all_end(workers: list[int]) -> None:
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers)


def _ctrl_c_export(url: str, workers_born: int) -> list[int]:
    """Start an export in workers, press Ctrl-C (to its whole process group, as a terminal
    does) as soon as `workers_born` workers exist, and check that it stopped without a
    traceback; the workers it had."""
    export = subprocess.Popen(
        [sys.executable, "-c", EXPORT_IN_WORKERS, url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        text=True,
    )
    deadline = time.monotonic() + 60
    while len(workers := _children(export.pid)) < workers_born:
        assert time.monotonic() < deadline and export.poll() is None
    os.killpg(export.pid, signal.SIGINT)
    _, stderr = export.communicate(timeout=60)
    assert export.returncode != 0
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    return workers + _children(export.pid)


def test_ctrl_c_stops_the_export_and_its_workers_without_a_traceback(history: Ledger) -> None:
    """Ctrl-C goes to the terminal's whole process group: workers included."""
    _all_end(_ctrl_c_export(history.url, exporting.WORKERS))


def test_ctrl_c_as_the_workers_are_born_leaves_no_traceback(history: Ledger) -> None:
    """Ctrl-C the moment the first worker exists: the worker has not yet set Ctrl-C aside, and
    the export may be starting the pool's thread (seen in CI on a loaded machine: a traceback
    from each; on PostgreSQL, then, an export that never ended). Several tries."""
    for _ in range(5):
        _all_end(_ctrl_c_export(history.url, 1))
