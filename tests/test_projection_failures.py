"""An event the projector cannot handle stops it with one line naming the event (its position
and type), never a traceback or a silent skip; its page is rolled back, so the read models stay
at the last page projected whole."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from click.testing import CliRunner

from ledger import Ledger, LedgerError
from ledger.cli import main
from ledger.domain import Account, AnnotationKey, Meta
from projections import ProjectionError, ReadModel
from projections import projector as projector_module
from tests.conftest import ADMIN

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def _add_annotation_unchecked(led: Ledger, account: UUID, content: str) -> int:
    """Record an AnnotationAdded below the commands' validation; return its position."""
    acc = led.repository.get(account)
    assert isinstance(acc, Account)
    meta = Meta(ADMIN, None, None, datetime.now(UTC))
    acc.add_annotation(
        AnnotationKey(content, T0, T0 + timedelta(hours=1), None, "ops", None, "label"), meta
    )
    led.save(acc)
    position = led.recorder.max_notification_id()
    assert position is not None
    return position


def _project_in_the_shell(url: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--db", url, "project"])
    return result.exit_code, result.stderr.strip()


@pytest.fixture
def broken_annotation_handler() -> Iterator[None]:
    """A handler that fails, as a bug or a value the read-model tables cannot hold would."""

    def fail(*_: object) -> None:
        raise RuntimeError("the handler failed")

    handlers = projector_module._HANDLERS
    original = handlers[Account.AnnotationAdded]
    handlers[Account.AnnotationAdded] = fail
    try:
        yield
    finally:
        handlers[Account.AnnotationAdded] = original


def test_an_event_that_cannot_be_projected_is_named_and_its_page_rolled_back(
    led: Ledger, rm: ReadModel, url: str, acme: UUID, broken_annotation_handler: None
) -> None:
    rm.catch_up()
    consistent = rm.position()
    ann = led.create_user("ann@example.org", account_id=acme, actor=ADMIN)
    bad = _add_annotation_unchecked(led, acme, "Maintenance")
    led.create_user("bob@example.org", account_id=acme, actor=ADMIN)

    with pytest.raises(ProjectionError) as raised:
        rm.catch_up()

    message = str(raised.value)
    assert isinstance(raised.value, LedgerError)
    assert message == (
        f"cannot project event {bad} (Account.AnnotationAdded): RuntimeError: the handler failed"
    )
    assert rm.position() == consistent < bad
    assert rm.get_user(ann) is None  # an event before it, in its page
    assert _project_in_the_shell(url) == (1, f"error: {message}")
    assert rm.position() == consistent  # each attempt stops at the same event


@pytest.mark.parametrize("url", ["postgres"], indirect=True)  # SQLite's text columns hold NUL
def test_a_nul_character_recorded_below_validation_fails_one_event_on_postgres(
    led: Ledger, rm: ReadModel, url: str, acme: UUID
) -> None:
    rm.catch_up()
    consistent = rm.position()
    _add_annotation_unchecked(led, acme, "Maintenance")
    bad = _add_annotation_unchecked(led, acme, "Main\x00tenance")

    code, output = _project_in_the_shell(url)

    assert code == 1
    assert output.startswith(f"error: cannot project event {bad} (Account.AnnotationAdded): ")
    assert "NUL" in output and len(output.splitlines()) == 1 and "Traceback" not in output
    assert rm.position() == consistent
    assert rm.search_annotations(acme) == []
