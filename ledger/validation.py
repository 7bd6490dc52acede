"""Input rules of SPEC §3 as pydantic types, and one function that applies them.

Every rule raises `ledger.ValidationError` with a message naming the field and the value.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC, datetime
from functools import cache, lru_cache
from typing import Annotated, Any, Final, Literal, TypeVar, get_args
from urllib.parse import urlsplit
from uuid import UUID
from zoneinfo import available_timezones

import email_validator
import pydantic
from pydantic import AfterValidator, AwareDatetime, StringConstraints, TypeAdapter

from ledger.errors import ValidationError

T = TypeVar("T")

ANNOTATION_TYPES: Final = ("alert", "holiday", "label", "feedback", "warning", "error")
AnnotationType = Literal["alert", "holiday", "label", "feedback", "warning", "error"]
assert get_args(AnnotationType) == ANNOTATION_TYPES


@lru_cache(maxsize=65_536)
def _email(value: str) -> str:
    try:
        return email_validator.validate_email(value, check_deliverability=False).normalized
    except email_validator.EmailNotValidError as error:
        raise ValueError(str(error)) from None


def _timezone(value: str) -> str:
    if value not in _timezones():
        raise ValueError("not an IANA time zone name")
    return value


@cache
def _timezones() -> frozenset[str]:
    return frozenset(available_timezones())


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http or https URL")
    return value


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _ip(value: str) -> str:
    return str(ipaddress.ip_address(value.strip()))


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def _trimmed(max_length: int) -> Any:
    return StringConstraints(strip_whitespace=True, min_length=1, max_length=max_length)


RoleName = Annotated[str, _trimmed(80)]
Description = Annotated[str, StringConstraints(max_length=255)]
AccountName = Annotated[str, _trimmed(100)]
Colour = Annotated[str, StringConstraints(pattern=re.compile(r"^#[0-9A-Fa-f]{6}$"))]
LogoUrl = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=255), AfterValidator(_http_url)
]
Email = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=255), AfterValidator(_email)
]
Username = Annotated[str, _trimmed(255)]
Timezone = Annotated[str, StringConstraints(strip_whitespace=True), AfterValidator(_timezone)]
Actor = Annotated[str, _trimmed(255)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]
CommandId = Annotated[str, _trimmed(255)]
Content = Annotated[
    str, StringConstraints(min_length=1, max_length=1024), AfterValidator(_not_blank)
]
SourceName = Annotated[str, _trimmed(255)]
Moment = Annotated[AwareDatetime, AfterValidator(_utc)]
IpAddress = Annotated[str, AfterValidator(_ip)]
Password = Annotated[str, StringConstraints(min_length=1, max_length=4096)]


@cache
def _adapter(annotation: Any) -> TypeAdapter[Any]:
    return TypeAdapter(annotation)


def valid(annotation: Any, value: Any, what: str) -> Any:
    """Return `value` checked and normalised by `annotation`, or raise ValidationError."""
    try:
        return _adapter(annotation).validate_python(value)
    except pydantic.ValidationError as error:
        detail = error.errors()[0]["msg"]
        shown = "a naive datetime" if _is_naive(value) else repr(value)
        raise ValidationError(f"invalid {what} {shown}: {detail}") from None


def optional(annotation: Any, value: Any, what: str) -> Any:
    return None if value is None else valid(annotation, value, what)


def _is_naive(value: Any) -> bool:
    return isinstance(value, datetime) and value.tzinfo is None


def as_uuid(value: Any, what: str) -> UUID:
    """Accept a UUID, its string form, or a model with an `id` (as returned by the read side),
    also behind a proxy with `_get_current_object()` (such as werkzeug's LocalProxy)."""
    if isinstance(value, UUID):
        return value
    unwrap = getattr(value, "_get_current_object", None)
    if callable(unwrap):
        value = unwrap()
    candidate = getattr(value, "id", value)
    if isinstance(candidate, UUID):
        return candidate
    if isinstance(candidate, str):
        try:
            return UUID(candidate.strip())
        except ValueError:
            pass
    raise ValidationError(f"invalid {what} id {value!r}: not a UUID")


def role_name(value: Any, what: str = "role") -> str:
    """A role given by name or as a role model with a `name`."""
    name = value if isinstance(value, str) else getattr(value, "name", value)
    if isinstance(name, str):
        return _role_name(name, what)
    return str(valid(RoleName, name, f"{what} name"))


@lru_cache(maxsize=4096)
def _role_name(name: str, what: str) -> str:
    return str(valid(RoleName, name, f"{what} name"))


def now() -> datetime:
    return datetime.now(UTC)
