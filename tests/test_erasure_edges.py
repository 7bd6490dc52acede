"""An erasure needs a reason with something in it: a blank one is refused before anything is
recorded or deleted. Found by mutation testing (scripts/mutation.py)."""

from __future__ import annotations

from uuid import UUID

import pytest

from ledger import Ledger, ValidationError
from tests.conftest import ADMIN
from tests.helpers import stored_state


@pytest.mark.parametrize("url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("reason", ["", "   ", None])
def test_an_erasure_with_a_blank_reason_is_refused_and_changes_nothing(
    led: Ledger, acme: UUID, reason: str | None
) -> None:
    ann = led.create_user("ann@acme.org", account_id=acme, actor=ADMIN)
    before = stored_state(led)
    with pytest.raises(ValidationError, match=r"invalid reason .*needs a reason"):
        led.erase_user(ann, actor=ADMIN, reason=reason)
    assert stored_state(led) == before
