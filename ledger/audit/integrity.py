"""Verify the integrity chain: recompute every link from the stored events, in one streaming
pass (constant memory), and name the first position where the log and its links disagree."""

from __future__ import annotations

import json
from contextlib import closing
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Final

from ledger.application import Ledger
from ledger.errors import ValidationError
from ledger.storage import chain

PAGE = 2000


@dataclass(frozen=True)
class Digest:
    """The head of the chain, to keep elsewhere: a later verify proves the log still extends it."""

    position: int
    hash: str
    time: str

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Digest:
        try:
            data = json.loads(text)
            return cls(
                position=int(data["position"]),
                hash=str(data["hash"]),
                time=str(data.get("time", "")),
            )
        except (ValueError, KeyError, TypeError) as error:
            raise ValidationError(
                f"not a digest as `ledger audit digest` prints it: {error}"
            ) from None


@dataclass(frozen=True)
class Verification:
    ok: bool
    events: int
    head: Digest | None
    first_bad_position: int | None = None
    problem: str | None = None

    def summary(self) -> str:
        if self.ok:
            head = f"head {self.head.position} {self.head.hash}" if self.head else "empty log"
            return f"intact: {self.events} events verified, {head}"
        return f"BROKEN at position {self.first_bad_position}: {self.problem}"


def digest(led: Ledger) -> Digest:
    head = led.side.select_one(chain.SELECT_HEAD, ())
    now = datetime.now(UTC).isoformat()
    if head is None:
        return Digest(position=0, hash=chain.GENESIS, time=now)
    return Digest(position=int(head["position"]), hash=str(head["hash"]), time=now)


def verify(led: Ledger, kept: Digest | None = None) -> Verification:
    """Recompute the chain; with a kept digest, also check that the log still extends it.

    One ordered scan of the events joined to their links (raw rows, no event objects). Links
    whose event is gone are found by counting: if the links before the point the scan reached
    outnumber the events it verified, the first such link is looked up (an anti-join over the
    whole chain on every run cost 0.25 s of the 2.1 s of verifying 777k events on SQLite, 0.68 s
    with a cold cache). The first position where anything disagrees is named."""
    scan = _scan(led, kept)
    orphan = None
    if _links_before(led, scan.stop) != scan.count:
        orphan = led.side.first_link_without_event(0, scan.stop)
    elif scan.failure is None:
        orphan = led.side.first_link_without_event(scan.stop, None)  # of deleted last events
    if orphan is not None:
        before = led.side.events_before(orphan)
        count, head = (0, None) if before is None else (before[0], Digest(before[1], before[2], ""))
        return Verification(False, count, head, orphan, _LINK_WITHOUT_EVENT)
    head = Digest(scan.position, scan.previous, "") if scan.count else None
    if scan.failure is not None:
        return Verification(False, scan.count, head, *scan.failure)
    if kept is not None and kept.position != 0 and not scan.kept_seen:
        return Verification(
            False,
            scan.count,
            head,
            scan.position,
            f"the log ends before the kept digest's position {kept.position} (truncated)",
        )
    return Verification(True, scan.count, head)


@dataclass
class _Scan:
    count: int = 0  # events verified
    position: int = 0  # the last one's position
    previous: str = chain.GENESIS  # and its link
    stop: int = 1  # the scan verified every event before this position, and no further
    kept_seen: bool = False
    failure: tuple[int, str] | None = None


def _scan(led: Ledger, kept: Digest | None) -> _Scan:
    """Verify every event's link against the link before it, in log order, up to the first
    event that fails."""
    scan = _Scan()
    kept_position = kept.position if kept is not None else -1
    link_of = chain.link_of
    previous, count, position_seen = chain.GENESIS, 0, 0

    def stopped(stop: int, failure: tuple[int, str] | None = None) -> _Scan:
        scan.count, scan.position, scan.previous = count, position_seen, previous
        scan.stop, scan.failure = stop, failure
        return scan

    with closing(led.side.chained_events(PAGE)) as pages:
        for page in pages:
            for position, originator_id, version, topic, state, recorded in page:
                if recorded is None:
                    return stopped(position, (position, _EVENT_WITHOUT_LINK))
                expected = link_of(previous, position, originator_id, version, topic, state)
                if expected != recorded:
                    return stopped(position, (position, _CHANGED))
                previous, position_seen = expected, position
                count += 1
                if position == kept_position:
                    assert kept is not None
                    if previous != kept.hash:
                        return stopped(position + 1, (position, _NOT_EXTENDED))
                    scan.kept_seen = True
    return stopped(position_seen + 1)


def _links_before(led: Ledger, position: int) -> int:
    row = led.side.select_one(chain.COUNT_BEFORE, (position,))
    return 0 if row is None else int(row["n"])


_LINK_WITHOUT_EVENT: Final = "a link without its event (the event was deleted or moved)"
_EVENT_WITHOUT_LINK: Final = "an event without a link (inserted, or its link deleted)"
_CHANGED: Final = (
    "the event or its link differs from what was recorded "
    "(changed, reordered, or an earlier event removed)"
)
_NOT_EXTENDED: Final = "the log no longer extends the kept digest (history rewritten)"


def as_dict(result: Verification) -> dict[str, Any]:
    data = asdict(result)
    data["summary"] = result.summary()
    return data
