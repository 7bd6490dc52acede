"""How a command, a query or a CLI argument names a user or an account: by id (a UUID, its text,
or a model with an `id`), or by what people know it by (a user's email, an open account's name).

One rule for every entry point; each side brings its own look-up (the write side its uniqueness
claims, the read side its read models)."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

from ledger.validation import as_uuid

Lookup = Callable[[str], UUID | None]


def is_email(reference: object) -> bool:
    return isinstance(reference, str) and "@" in reference


def user_id(reference: object, by_email: Lookup, what: str = "user") -> UUID | None:
    """The id a user reference names; None for an email that no user holds."""
    if is_email(reference):
        return by_email(str(reference))
    return as_uuid(reference, what)


def account_id(reference: object, by_name: Lookup, what: str = "account") -> UUID | None:
    """The id an account reference names; None for a name that no open account holds."""
    if isinstance(reference, str):
        try:
            return UUID(reference.strip())
        except ValueError:
            return by_name(reference)
    return as_uuid(reference, what)
