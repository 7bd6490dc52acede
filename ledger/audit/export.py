"""`ledger audit export`: the log's events, in log order, as OCSF, JSON lines or CSV, for SIEM
imports. Read page by page, so memory stays flat however long the log; personal data shows as
it is now (an erased user's as erased)."""

from __future__ import annotations

import contextlib
import csv
import gc
import json
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final, TextIO
from uuid import UUID

import orjson

from ledger.application import Ledger
from ledger.audit import ocsf
from ledger.audit.evidence import csv_cell, csv_json_cell
from ledger.errors import LedgerError, ValidationError
from ledger.storage.database import DATABASE_ERRORS, problem_line
from ledger.storage.settings import StorageError, sqlite_file

FORMATS: Final = ("ocsf", "jsonl", "csv")
PAGE: Final = 2000
SELECT_LINKS: Final = (
    "SELECT position, hash FROM ledger_chain WHERE position >= ? AND position <= ?"
)
SELECT_LINK: Final = "SELECT hash FROM ledger_chain WHERE position = ?"
CSV_COLUMNS: Final = (
    "position",
    "timestamp",
    "event",
    "aggregate",
    "originator_id",
    "originator_version",
    "actor",
    "reason",
    "command_id",
    "chain_link",
    "details",
)


@dataclass(frozen=True)
class Recorded:
    """One event of the log with its position and its integrity-chain link."""

    position: int
    link: str
    event: Any


def _pages(
    led: Ledger, after: int, stop: int | None, page: int
) -> Iterator[tuple[list[int], dict[int, str], list[Any]]]:
    """The log's pages after `after` up to `stop`: positions, chain links, decoded events."""
    last = (led.recorder.max_notification_id() or 0) if stop is None else stop
    start = after + 1
    while start <= last:
        notifications = led.recorder.select_notifications(start=start, limit=page, stop=last)
        if not notifications:
            return
        first_id, last_id = notifications[0].id, notifications[-1].id
        links: dict[int, str] = led.side.select_pairs(SELECT_LINKS, (first_id, last_id))
        events = led.to_domain_events(notifications)
        yield [notification.id for notification in notifications], links, events
        led.forget_cached_keys()  # keys of the page: not kept for the rest of the export
        start = last_id + 1


def recorded(
    led: Ledger, *, after: int = 0, stop: int | None = None, page: int = PAGE
) -> Iterator[Recorded]:
    """The events after position `after` (exclusive) up to `stop` (inclusive; the head when
    None), a page at a time, with personal data opened (or erased)."""
    for positions, links, events in _pages(led, after, stop, page):
        for position, event in zip(positions, events, strict=True):
            yield Recorded(position, links.get(position, ""), event)


def as_record(item: Recorded) -> dict[str, Any]:
    """An event as a flat JSON record: position, common metadata, its own fields."""
    return _record(item.position, item.link, item.event)


def _record(position: int, link: str, event: Any) -> dict[str, Any]:
    return {
        "position": position,
        "timestamp": event.timestamp.isoformat(),
        "event": ocsf.event_name(event),
        "aggregate": ocsf.aggregate_name(event),
        "originator_id": str(event.originator_id),
        "originator_version": event.originator_version,
        "actor": event.actor,
        "reason": event.reason,
        "command_id": event.command_id,
        "chain_link": link,
        **ocsf.fields(event),
    }


def to_ocsf(item: Recorded) -> dict[str, Any]:
    return ocsf.to_ocsf(item.position, item.link, item.event)


# json.dumps with options builds an encoder per call: one, made once
_ENCODE: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
# what orjson writes exactly as _ENCODE does (checked for every character in the tests);
# floats it writes differently (1e-07 as 1e-7), so an event holding one goes through _ENCODE
_EXACT: Final = frozenset({str, int, bool, type(None), UUID, datetime})


def _exact(value: Any) -> bool:
    kind = type(value)
    if kind in _EXACT:
        return True
    if kind is list or kind is tuple or kind is set or kind is frozenset:
        return all(_exact(item) for item in value)
    if kind is dict:
        return all(_exact(key) and _exact(item) for key, item in value.items())
    return False


def json_line(data: dict[str, Any], event: Any) -> str:
    """`data`, made from `event`, as one line of JSON: what `_ENCODE` writes, faster."""
    values = vars(event).values()
    if _EXACT.issuperset(map(type, values)) or all(_exact(value) for value in values):
        try:
            return orjson.dumps(data, option=orjson.OPT_APPEND_NEWLINE).decode()
        except orjson.JSONEncodeError:
            pass  # an integer beyond 64 bits, a lone surrogate: as _ENCODE does (or fails)
    return _ENCODE(data) + "\n"


@dataclass(frozen=True)
class Exported:
    events: int
    first: int | None
    last: int | None


def export(
    led: Ledger,
    out: TextIO,
    fmt: str,
    *,
    after: int = 0,
    until: datetime | None = None,
) -> Exported:
    """Write the events after position `after` (exclusive) recorded at or before `until` to
    `out`, in `fmt`: `ocsf` and `jsonl` one JSON object a line, `csv` with a header row.
    A long log in JSON is read, decoded and encoded by `WORKERS` processes, a page each in
    turn, and written here in log order (`_in_workers`)."""
    if fmt not in FORMATS:
        raise ValidationError(f"invalid format {fmt!r}: one of {', '.join(FORMATS)}")
    if isinstance(after, bool) or not isinstance(after, int) or after < 0:
        raise ValidationError(f"invalid after {after!r}: a log position, 0 or more")
    if fmt == "csv":
        return _export_csv(led, out, after, until)
    head = led.recorder.max_notification_id() or 0
    pieces = (
        _in_workers(led, fmt, after, head, until)
        if head - after >= PARALLEL_FROM and _can_fork(led)
        else (
            _piece(fmt, positions, links, events, until)
            for positions, links, events in _pages(led, after, head, PAGE)
        )
    )
    count, first, last = 0, None, None
    for piece in pieces:
        if piece.count:
            out.write(piece.text)
            count += piece.count
            first = piece.first if first is None else first
            last = piece.last
    return Exported(count, first, last)


@dataclass(frozen=True)
class Piece:
    """A page of the log as export lines."""

    text: str
    count: int
    first: int | None
    last: int | None


def _piece(
    fmt: str, positions: list[int], links: dict[int, str], events: list[Any], until: Any
) -> Piece:
    build = ocsf.to_ocsf if fmt == "ocsf" else _record
    lines, done = [], []
    for position, event in zip(positions, events, strict=True):
        if until is not None and event.timestamp > until:
            continue
        lines.append(json_line(build(position, links.get(position, ""), event), event))
        done.append(position)
    return Piece("".join(lines), len(done), done[0] if done else None, done[-1] if done else None)


# Below this many events an export runs in this process: forking and opening the ledger in
# each worker costs more than the second core gives back.
PARALLEL_FROM: Final = 20_000
WORKERS: Final = 2
WORKER_GC_THRESHOLD: Final = 100_000  # new objects (less those freed) between two collections
_worker_ledger: Ledger | None = None
_worker_problem = ""  # why this worker could not open the ledger


@dataclass(frozen=True)
class Unopened:
    """A worker's answer when it could not open the ledger (a connection limit, say)."""

    problem: str


def _can_fork(led: Ledger) -> bool:
    """Workers fork (they must open the same database: a file or PostgreSQL, not memory)."""
    if "fork" not in multiprocessing.get_all_start_methods() or (os.cpu_count() or 1) < 2:
        return False
    path = sqlite_file(led.url)
    return path is None or path.name != ":memory:"


def _open_worker(url: str, parent: int) -> None:
    """A worker's start: Ctrl-C is the parent's to handle (the terminal sends it to the whole
    group); the worker ends when the parent is gone (killed, it would never say so); a failure
    to open the ledger is answered to the parent, which exports without the workers."""
    global _worker_ledger, _worker_problem
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_end_with_parent, args=(parent,), daemon=True).start()
    try:
        _worker_ledger = Ledger(url, create=False, read_only=True)
    except (*DATABASE_ERRORS, LedgerError) as error:
        _worker_problem = problem_line(error, url)
    # The fork inherits the parent's whole heap: set it aside from the collector, which would
    # otherwise walk it again and again for nothing (and touch, so copy, its pages).
    gc.freeze()
    # A page's events live until its lines are made, tens of thousands of objects: collected
    # every 700 new ones, they were walked again and again (2.4 of 29 us CPU an OCSF event).
    gc.set_threshold(WORKER_GC_THRESHOLD, 10, 10)


@contextlib.contextmanager
def _ctrl_c_held() -> Iterator[None]:
    """Ctrl-C held back, not lost, while the pool forks its workers and starts its thread (on
    the first submit): a worker born meanwhile only notes it, until `_open_worker` ignores it;
    and this process is interrupted only once the pool is whole, so `shutdown` ends it (cut
    short between its forks and its thread, the pool left workers that nothing stops, which
    the exit then waited for). A handler, not a signal mask: the signal may land on any thread
    (psycopg's pool has some), and Python raises it in the main thread all the same."""
    if threading.current_thread() is not threading.main_thread():
        yield  # Ctrl-C interrupts the main thread only
        return
    pressed: list[Any] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pressed.append(frame))
    try:
        yield
    finally:  # None: a handler set outside Python, which cannot be put back from here
        signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)
    if pressed and callable(previous):
        previous(signal.SIGINT, pressed[0])
    elif pressed and previous in (signal.SIG_DFL, None):
        os.kill(os.getpid(), signal.SIGINT)


def _end_with_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _worker_piece(fmt: str, start: int, stop: int, until: datetime | None) -> Piece | Unopened:
    """The positions from `start` to `stop` (both inclusive) as export lines, in a worker."""
    if _worker_ledger is None:
        return Unopened(_worker_problem)
    try:
        pages = _pages(_worker_ledger, start - 1, stop, stop - start + 1)
        pieces = [_piece(fmt, *page, until) for page in pages]
    except DATABASE_ERRORS as error:  # the driver's own error may not survive pickling
        raise StorageError(problem_line(error, _worker_ledger.url)) from None
    counted = [piece for piece in pieces if piece.count]
    return Piece(
        "".join(piece.text for piece in counted),
        sum(piece.count for piece in counted),
        counted[0].first if counted else None,
        counted[-1].last if counted else None,
    )


def _in_workers(
    led: Ledger, fmt: str, after: int, head: int, until: datetime | None
) -> Iterator[Piece]:
    """Pages of PAGE positions handed to the workers in turn, their lines taken back in log
    order, at most two pages a worker under way (memory stays flat). From a page a worker
    could not open the ledger for, the rest is exported in this process."""
    context = multiprocessing.get_context("fork")
    pool = ProcessPoolExecutor(
        WORKERS, mp_context=context, initializer=_open_worker, initargs=(led.url, os.getpid())
    )
    pending: deque[tuple[int, Future[Piece | Unopened]]] = deque()
    starts = iter(range(after + 1, head + 1, PAGE))
    rest_from: int | None = None
    try:
        while True:
            with _ctrl_c_held():
                while len(pending) < 2 * WORKERS and (start := next(starts, None)) is not None:
                    stop = min(start + PAGE - 1, head)
                    pending.append((start, pool.submit(_worker_piece, fmt, start, stop, until)))
            if not pending:
                break
            start, future = pending.popleft()
            piece = future.result()
            if isinstance(piece, Unopened):
                rest_from = start
                break
            yield piece
    finally:
        pool.shutdown(cancel_futures=True)
    if rest_from is not None:
        for positions, links, events in _pages(led, rest_from - 1, head, PAGE):
            yield _piece(fmt, positions, links, events, until)


def _export_csv(led: Ledger, out: TextIO, after: int, until: datetime | None) -> Exported:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    count, first, last = 0, None, None
    for positions, links, events in _pages(led, after, None, PAGE):
        for position, event in zip(positions, events, strict=True):
            if until is not None and event.timestamp > until:
                continue
            record = _record(position, links.get(position, ""), event)
            details = {key: value for key, value in record.items() if key not in CSV_COLUMNS}
            row = [record.get(column) for column in CSV_COLUMNS[:-1]]
            # no cell a formula, as in the reports; the details' JSON keeps the values exact
            writer.writerow([*map(csv_cell, row), csv_json_cell(details)])
            count += 1
            first = position if first is None else first
            last = position
    return Exported(count, first, last)


def export_to_file(
    led: Ledger, path: Path, fmt: str, *, after: int = 0, until: datetime | None = None
) -> Exported:
    """Export into `path` through a partial file renamed at the end: a file of that name is
    a whole export. An existing file is never overwritten."""
    if path.exists() or path.is_symlink():
        raise ValidationError(f"invalid out {str(path)!r}: it exists; an export never overwrites")
    partial = path.with_name(f".{path.name}.partial")
    created = False
    try:
        with partial.open("x", encoding="utf-8", newline="") as out:
            created = True
            done = export(led, out, fmt, after=after, until=until)
        os.link(partial, path)  # fails, rather than replaces, if the name was taken meanwhile
    except FileExistsError:
        raise ValidationError(
            f"invalid out {str(path)!r}: it (or {partial.name}, an export under way) exists"
        ) from None
    except OSError as error:
        raise ValidationError(f"cannot write --out {str(path)!r}: {error.strerror}") from None
    finally:
        if created:
            partial.unlink(missing_ok=True)
    return done
