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

    One ordered scan of the events joined to their links (raw rows, no event objects), plus one
    query for links whose event is gone; the first position where anything disagrees is named."""
    orphan = led.side.first_link_without_event()
    previous, count, position_seen = chain.GENESIS, 0, 0
    kept_position = kept.position if kept is not None else -1
    kept_seen = kept is None or kept.position == 0

    def broken(position: int, problem: str) -> Verification:
        head = Digest(position_seen, previous, "") if count else None
        return Verification(False, count, head, position, problem)

    link_of = chain.link_of
    with closing(led.side.chained_events(PAGE)) as pages:
        for page in pages:
            for position, originator_id, version, topic, state, recorded in page:
                if orphan is not None and orphan < position:
                    return broken(orphan, _LINK_WITHOUT_EVENT)
                if recorded is None:
                    return broken(position, _EVENT_WITHOUT_LINK)
                expected = link_of(previous, position, originator_id, version, topic, state)
                if expected != recorded:
                    return broken(
                        position,
                        "the event or its link differs from what was recorded "
                        "(changed, reordered, or an earlier event removed)",
                    )
                previous, position_seen = expected, position
                count += 1
                if position == kept_position:
                    assert kept is not None
                    if previous != kept.hash:
                        return broken(
                            position,
                            "the log no longer extends the kept digest (history rewritten)",
                        )
                    kept_seen = True
    if orphan is not None:
        return broken(orphan, _LINK_WITHOUT_EVENT)
    head = Digest(position_seen, previous, "") if count else None
    if not kept_seen:
        assert kept is not None
        return broken(
            position_seen,
            f"the log ends before the kept digest's position {kept.position} (truncated)",
        )
    return Verification(True, count, head)


_LINK_WITHOUT_EVENT: Final = "a link without its event (the event was deleted or moved)"
_EVENT_WITHOUT_LINK: Final = "an event without a link (inserted, or its link deleted)"


def as_dict(result: Verification) -> dict[str, Any]:
    data = asdict(result)
    data["summary"] = result.summary()
    return data
