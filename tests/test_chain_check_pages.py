"""`chain_check._check` computes a page's links at once, each from the link recorded before it:
exactly what checking a row at a time finds (the same result, or the same error), whatever is
tampered with, wherever the pages break and the kept digest sits."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator, Sequence
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.storage import chain_check
from ledger.storage.chain import GENESIS, link_of


def one_row_at_a_time(
    pages: Iterator[Sequence[Sequence[Any]]], previous: str, stop: int, kept: Any, dashed: bool
) -> chain_check.Checked:
    """The check as it was before pages were computed at once: row by row, from the link
    computed before."""
    kept_position, kept_hash = kept if kept is not None else (None, "")
    kept_seen, count, position_seen = False, 0, 0
    for page in pages:
        for position, originator_id, version, topic, state, recorded in page:
            if recorded is None:
                failure = (position, chain_check.EVENT_WITHOUT_LINK)
                return chain_check.Checked(
                    count, position_seen, previous, position, kept_seen, failure
                )
            try:
                o = originator_id if dashed else originator_id.replace("-", "")
                o = o if dashed else f"{o[:8]}-{o[8:12]}-{o[12:16]}-{o[16:20]}-{o[20:]}"
                digest = hashlib.sha256(
                    f"{previous}\x1f{position}\x1f{o}\x1f{version}\x1f{topic}\x1f".encode()
                )
                digest.update(state)
            except (TypeError, AttributeError):
                failure = (position, chain_check.UNREADABLE)
                return chain_check.Checked(
                    count, position_seen, previous, position, kept_seen, failure
                )
            expected = digest.hexdigest()
            if expected != recorded:
                failure = (position, chain_check.CHANGED)
                return chain_check.Checked(
                    count, position_seen, previous, position, kept_seen, failure
                )
            previous, position_seen = expected, position
            count += 1
            if position == kept_position:
                if previous != kept_hash:
                    failure = (position, chain_check.NOT_EXTENDED)
                    return chain_check.Checked(
                        count, position_seen, previous, position + 1, kept_seen, failure
                    )
                kept_seen = True
    return chain_check.Checked(count, position_seen, previous, stop, kept_seen)


TAMPERING = st.sampled_from(
    ["link", "no link", "state", "id", "dashed id", "no state", "text state", "no id"]
)


@st.composite
def logs(draw: st.DrawFn) -> tuple[list[list[Any]], str, int, Any]:
    n = draw(st.integers(0, 40))
    start = draw(st.integers(1, 5))
    previous = draw(st.sampled_from([GENESIS, "ab" * 32]))
    rows: list[list[Any]] = []
    link = previous
    for i in range(n):
        position = start + i
        uid = UUID(int=draw(st.integers(0, 2**128 - 1)))
        state = draw(st.binary(max_size=40))
        link = link_of(link, position, str(uid), i + 1, "t:T", state)
        rows.append([position, uid.hex, i + 1, "t:T", state, link])
    for _ in range(draw(st.integers(0, 3))):
        if not rows:
            break
        row = rows[draw(st.integers(0, len(rows) - 1))]
        how = draw(TAMPERING)
        if how == "link":
            row[5] = "0" * 64
        elif how == "no link":
            row[5] = None
        elif how == "state":
            row[4] = (row[4] if isinstance(row[4], bytes) else b"") + b"x"
        elif how == "id":
            row[1] = row[1][::-1]
        elif how == "dashed id" and "-" not in row[1]:
            row[1] = str(UUID(hex=row[1]))  # the same id: still verifies, as before
        elif how == "text state":
            row[4] = row[4].decode("latin-1") if isinstance(row[4], bytes) else "text"
        elif how == "no id":
            row[1] = None
        else:
            row[4] = None
    kept = draw(
        st.one_of(
            st.none(),
            st.builds(lambda r: (r[0], r[5] or ""), st.sampled_from(rows)) if rows else st.none(),
            st.tuples(st.integers(0, start + n + 1), st.just("cd" * 32)),
        )
    )
    return rows, previous, start + n, kept


def paged(rows: list[list[Any]], cuts: list[int]) -> Iterator[list[tuple[Any, ...]]]:
    bounds = sorted({0, len(rows), *(c % (len(rows) + 1) for c in cuts)})
    for a, b in itertools.pairwise(bounds):
        yield [tuple(r) for r in rows[a:b]]


def outcome(check: Any, *args: Any) -> Any:
    try:
        return check(*args)
    except Exception as error:  # the same error row by row and page at once
        return type(error)


@settings(max_examples=400, deadline=None)
@given(logs(), st.lists(st.integers(0, 50), max_size=4))
def test_pages_at_once_find_what_one_row_at_a_time_finds(
    log: tuple[list[list[Any]], str, int, Any], cuts: list[int]
) -> None:
    rows, previous, stop, kept = log
    new = outcome(chain_check._check, paged(rows, cuts), previous, stop, kept, False)
    old = outcome(one_row_at_a_time, paged(rows, cuts), previous, stop, kept, False)
    assert new == old


@pytest.mark.parametrize("dashed", [False, True])
def test_an_intact_log_in_either_id_form(dashed: bool) -> None:
    rows, link = [], GENESIS
    for position in range(1, 6):
        uid = UUID(int=position * 7919)
        link = link_of(link, position, str(uid), 1, "t:T", b"{}")
        rows.append((position, str(uid) if dashed else uid.hex, 1, "t:T", b"{}", link))
    found = chain_check._check(iter([rows[:2], rows[2:]]), GENESIS, 6, (3, rows[2][5]), dashed)
    assert found == chain_check.Checked(5, 5, link, 6, True)
