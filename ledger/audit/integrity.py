"""Verify the integrity chain: recompute every link from the stored events, in one streaming
pass (constant memory), and name the first position where the log and its links disagree."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from eventsourcing.persistence import Notification

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


def _events(led: Ledger) -> Iterator[Notification]:
    start = 1
    while page := led.recorder.select_notifications(start=start, limit=PAGE):
        yield from page
        start = page[-1].id + 1


def _links(led: Ledger) -> Iterator[tuple[int, str]]:
    after = 0
    while page := led.side.select_all(chain.SELECT_PAGE, (after, PAGE)):
        for row in page:
            yield int(row["position"]), str(row["hash"])
        after = int(page[-1]["position"])


def verify(led: Ledger, kept: Digest | None = None) -> Verification:
    """Recompute the chain; with a kept digest, also check that the log still extends it."""
    events, links = _events(led), _links(led)
    event, link = next(events, None), next(links, None)
    previous, count, head = chain.GENESIS, 0, None
    kept_seen = kept is None or kept.position == 0

    def broken(position: int, problem: str) -> Verification:
        return Verification(False, count, head, position, problem)

    while event is not None or link is not None:
        if link is None or (event is not None and event.id < link[0]):
            assert event is not None
            return broken(event.id, "an event without a link (inserted, or its link deleted)")
        if event is None or link[0] < event.id:
            return broken(link[0], "a link without its event (the event was deleted or moved)")
        previous = chain.link(previous, event.id, event)
        if previous != link[1]:
            return broken(
                event.id,
                "the event or its link differs from what was recorded "
                "(changed, reordered, or an earlier event removed)",
            )
        count += 1
        head = Digest(event.id, previous, "")
        if kept is not None and event.id == kept.position:
            if previous != kept.hash:
                return broken(
                    event.id, "the log no longer extends the kept digest (history rewritten)"
                )
            kept_seen = True
        event, link = next(events, None), next(links, None)
    if not kept_seen:
        assert kept is not None
        at = head.position if head else 0
        return broken(
            at, f"the log ends before the kept digest's position {kept.position} (truncated)"
        )
    return Verification(True, count, head)


def as_dict(result: Verification) -> dict[str, Any]:
    data = asdict(result)
    data["summary"] = result.summary()
    return data
