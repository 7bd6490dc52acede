"""Claim keys depend on the kind's value, not on which string object names it (a kind read
back from a row is equal to the constant, not the same object). Found by mutation testing
(scripts/mutation.py)."""

from __future__ import annotations

from ledger.storage.side_tables import EMAIL, USERNAME, claim_key

SECRET = b"s" * 32


def copied(kind: str) -> str:
    """An equal string that is not the same object, as a database row gives back."""
    return "".join(list(kind))


def test_an_email_kind_equal_by_value_is_casefolded_and_hashed() -> None:
    assert copied(EMAIL) is not EMAIL
    expected = claim_key(SECRET, EMAIL, "ann@acme.org")
    assert claim_key(SECRET, copied(EMAIL), "Ann@ACME.org") == expected
    assert expected != "ann@acme.org"


def test_a_username_kind_equal_by_value_is_hashed() -> None:
    key = claim_key(SECRET, copied(USERNAME), "ann")
    assert key == claim_key(SECRET, USERNAME, "ann") and key != "ann"
