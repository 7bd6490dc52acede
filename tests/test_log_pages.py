"""The projector's read of the log (`projections.log_pages`): on SQLite its own plain read,
which must give exactly what the library's `select_notifications` gives; the read models
projected through it equal those projected through the library's read."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest

from ledger import Ledger
from projections import ReadModel
from projections import projector as p
from projections.log_pages import PageNotification, read_page
from tests.conftest import ADMIN
from tests.readmodel_dump import dump
from tests.test_projector import record_history

FIELDS = ("id", "originator_id", "originator_version", "topic", "state")


def _fields(notifications: Any) -> list[tuple[Any, ...]]:
    return [tuple(getattr(n, name) for name in FIELDS) for n in notifications]


def test_a_page_is_the_librarys_page(url: str, led: Ledger, acme: UUID) -> None:
    head = record_history(led, acme, users=4, logins=3)
    recorder = led.recorder
    for start, limit, stop in [
        (1, 1000, None),
        (1, 7, None),
        (5, 10, 9),
        (head, 5, None),
        (head + 1, 5, None),
        (3, 10, 2),
        (2, 0, None),
    ]:
        ours = read_page(recorder, start, limit, stop)
        library = recorder.select_notifications(start=start, limit=limit, stop=stop)
        assert _fields(ours) == _fields(library), (start, limit, stop)
        assert all(type(n.originator_id) is UUID for n in ours)
    plain = read_page(recorder, 1, 3, None)
    if url.startswith("sqlite"):  # the fast path is the one tested above
        assert all(type(n) is PageNotification for n in plain)
    assert led.to_domain_events(list(plain)) == led.to_domain_events(
        list(recorder.select_notifications(start=1, limit=3))
    )


def test_read_models_equal_those_of_the_librarys_read(
    url: str, led: Ledger, acme: UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    record_history(led, acme, users=5, logins=4)
    gone = led.create_user("gone@acme.org", account_id=acme, actor=ADMIN)
    led.erase_user(gone, actor=ADMIN, reason="request")
    ours = _rebuilt(url)

    def library(recorder: Any, start: int, limit: int, stop: int | None) -> Any:
        return recorder.select_notifications(start=start, limit=limit, stop=stop)

    monkeypatch.setattr(p, "read_page", library)
    assert _rebuilt(url) == ours


def _rebuilt(url: str) -> Any:
    """The read models rebuilt in pages of 7, dumped."""
    model = ReadModel(url, page_size=7)
    try:
        model.rebuild()
        return dump(model)
    finally:
        model.close()
