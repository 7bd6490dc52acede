"""Users are looked up by the email as given, unvalidated, before validating it (validation is
the costly part of naming users by email in an import). That is sound only if every spelling
that differs from a valid email's normal form by case alone validates to that form, up to case:
checked here on generated emails."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.errors import ValidationError
from ledger.validation import Email, valid


def _respelled(text: str, flips: list[bool]) -> str:
    flips = (flips + [False] * len(text))[: len(text)]
    return "".join(c.swapcase() if flip else c for c, flip in zip(text, flips, strict=True))


@given(st.emails(), st.lists(st.booleans(), max_size=80), st.sampled_from(["", " ", "\t"]))
def test_case_variants_of_a_normal_email_validate_to_it(
    email: str, flips: list[bool], padding: str
) -> None:
    try:
        normal = valid(Email, email, "email")
    except ValidationError:
        return  # the generator's idea of an email is wider than email_validator's
    if not normal.isascii():
        return  # never looked up as given
    variant = padding + _respelled(normal, flips) + padding
    assert valid(Email, variant, "email").casefold() == normal.casefold()


@pytest.mark.parametrize("email", ["a@xn--bcher-kva.example", "A@XN--BCHER-KVA.EXAMPLE"])
def test_an_ascii_spelling_of_an_idn_is_not_its_normal_form(email: str) -> None:
    # such a spelling finds nobody as given; the look-up then validates it (see test_commands)
    assert valid(Email, email, "email").casefold() == "a@bücher.example"
