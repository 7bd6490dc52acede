"""Input rules of SPEC §3 as pydantic types, and one function that applies them.

Every rule raises `ledger.ValidationError` with a message naming the field and (cut short, and
never a secret) the value, in the project's words rather than pydantic's.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from functools import cache, lru_cache
from typing import Annotated, Any, Final, Literal, TypeVar, get_args
from urllib.parse import urlsplit
from uuid import UUID
from zoneinfo import available_timezones

import email_validator
import pydantic
from pydantic import AfterValidator, AwareDatetime, BeforeValidator, StringConstraints, TypeAdapter
from pydantic_core import ErrorDetails

from ledger.errors import ValidationError

T = TypeVar("T")

ANNOTATION_TYPES: Final = ("alert", "holiday", "label", "feedback", "warning", "error")
AnnotationType = Literal["alert", "holiday", "label", "feedback", "warning", "error"]
assert get_args(AnnotationType) == ANNOTATION_TYPES

SHOWN_LENGTH: Final = 80  # characters of a rejected value an error message shows
# C0 and C1 control characters other than tab and newline, and lone surrogates (which no
# encoding can store): they break terminals, logs, and PostgreSQL's text columns (NUL).
_FORBIDDEN: Final = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


class _Secret:
    """Marks a type whose values an error message never shows (see `valid`)."""


SECRET: Final = _Secret()


def _plain_text(value: str) -> str:
    found = _FORBIDDEN.search(value)
    if found is not None:
        code = ord(found.group())
        what = "a lone surrogate" if 0xD800 <= code <= 0xDFFF else "a control character"
        raise ValueError(
            f"must not contain {what} (U+{code:04X}); of those, only tab and newline are allowed"
        )
    return value


_PLAIN: Final = AfterValidator(_plain_text)


def _text(max_length: int, *, trimmed: bool = True, min_length: int = 1) -> Any:
    """The length rules of a text field (trimmed of surrounding whitespace first)."""
    return StringConstraints(strip_whitespace=trimmed, min_length=min_length, max_length=max_length)


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


_COLOUR: Final = re.compile(r"#[0-9A-Fa-f]{6}")


def _colour(value: str) -> str:
    if not _COLOUR.fullmatch(value):
        raise ValueError("must be a colour as #RRGGBB")
    return value


def _utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range when converted to UTC") from None


_NUMBER: Final = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


def _not_a_number(value: Any) -> Any:
    # pydantic would read a number (or digits in a string) as seconds since 1970:
    # "20260301" would become 1970-08-23
    text = (
        bytes(value).decode("utf-8", "replace") if isinstance(value, bytes | bytearray) else value
    )
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if number or (isinstance(text, str) and _NUMBER.fullmatch(text)):
        raise ValueError(
            "must be a date and time with a UTC offset, such as 2026-03-01T09:00:00+00:00, "
            "not a number"
        )
    return value


def _ip(value: str) -> str:
    return str(ipaddress.ip_address(value.strip()))


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


# Every text type checks `_PLAIN` first: no control characters but tab and newline.
RoleName = Annotated[str, _text(80), _PLAIN]
Description = Annotated[str, _text(255, trimmed=False, min_length=0), _PLAIN]
AccountName = Annotated[str, _text(100), _PLAIN]
Colour = Annotated[str, _PLAIN, AfterValidator(_colour)]
LogoUrl = Annotated[str, _text(255, min_length=0), _PLAIN, AfterValidator(_http_url)]
Email = Annotated[str, _text(255, min_length=0), _PLAIN, AfterValidator(_email)]
Username = Annotated[str, _text(255), _PLAIN]
Timezone = Annotated[str, _text(255, min_length=0), _PLAIN, AfterValidator(_timezone)]
Actor = Annotated[str, _text(255), _PLAIN]
Reason = Annotated[str, _text(500, min_length=0), _PLAIN]
CommandId = Annotated[str, _text(255), _PLAIN]
Content = Annotated[str, _text(1024, trimmed=False), _PLAIN, AfterValidator(_not_blank)]
SourceName = Annotated[str, _text(255), _PLAIN]
Moment = Annotated[AwareDatetime, BeforeValidator(_not_a_number), AfterValidator(_utc)]
IpAddress = Annotated[str, _text(100, min_length=0), _PLAIN, AfterValidator(_ip)]
Password = Annotated[str, _text(4096, trimmed=False), _PLAIN, SECRET]


@cache
def _adapter(annotation: Any) -> TypeAdapter[Any]:
    return TypeAdapter(annotation)


def valid(annotation: Any, value: Any, what: str) -> Any:
    """Return `value` checked and normalised by `annotation`, or raise ValidationError."""
    try:
        return _adapter(annotation).validate_python(value)
    except pydantic.ValidationError as error:
        detail = in_our_words(error.errors()[0])
        if SECRET in getattr(annotation, "__metadata__", ()):
            raise ValidationError(f"invalid {what}: {detail}") from None
        value_shown = "a naive datetime" if _is_naive(value) else shown(value)
        raise ValidationError(f"invalid {what} {value_shown}: {detail}") from None


def validator(annotation: Any, what: str) -> Callable[[Any], Any]:
    """`valid` for one annotation, made once: a command field checks its input with it
    (looking the annotation's adapter up each time costs more than most checks)."""
    check = _adapter(annotation).validate_python

    def validate(value: Any) -> Any:
        try:
            return check(value)
        except pydantic.ValidationError:
            return valid(annotation, value, what)  # raises, in our words

    return validate


def is_valid(annotation: Any, value: Any) -> bool:
    try:
        _adapter(annotation).validate_python(value)
    except pydantic.ValidationError:
        return False
    return True


def optional(annotation: Any, value: Any, what: str) -> Any:
    return None if value is None else valid(annotation, value, what)


def shown(value: Any) -> str:
    """A value as an error message shows it: its repr, cut to about SHOWN_LENGTH characters."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.isoformat()
    if isinstance(value, str) and len(value) > SHOWN_LENGTH:
        return f"{value[:SHOWN_LENGTH]!r}... ({len(value):,} characters)"
    if isinstance(value, bytes | bytearray) and len(value) > SHOWN_LENGTH:
        return f"{bytes(value[:SHOWN_LENGTH])!r}... ({len(value):,} bytes)"
    text = repr(value)
    return text if len(text) <= SHOWN_LENGTH else f"{text[:SHOWN_LENGTH]}..."


def in_our_words(error: ErrorDetails) -> str:
    """pydantic's complaint about a value, said as this project says it."""
    kind, context = error["type"], error.get("ctx", {})
    if kind == "value_error" and "error" in context:
        return str(context["error"])
    if kind == "string_type":
        return "must be text"
    if kind == "string_unicode":
        return "must not contain a lone surrogate (U+D800 to U+DFFF): it is not valid Unicode"
    if kind == "string_too_short":
        minimum = context.get("min_length", 1)
        return "must not be empty" if minimum == 1 else f"must have {minimum}+ characters"
    if kind == "string_too_long":
        return f"must have at most {context.get('max_length')} characters"
    if kind == "timezone_aware":
        return "must be timezone-aware (naive datetimes are not accepted)"
    if kind.startswith(("datetime_", "date_")):
        return "must be a date and time with a UTC offset, such as 2026-03-01T09:00:00+00:00"
    if kind in ("less_than_equal", "greater_than_equal", "int_type", "int_parsing"):
        bounds = {"less_than_equal": "at most {le}", "greater_than_equal": "at least {ge}"}
        rule = bounds.get(kind, "a whole number").format(**context)
        return f"must be {rule}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "must be a JSON object"
    if kind == "literal_error":
        return f"must be one of {context.get('expected')}"
    return str(error["msg"])


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
    raise ValidationError(f"invalid {what} id {shown(value)}: not a UUID")


def role_name(value: Any, what: str = "role") -> str:
    """A role given by name or as a role model with a `name`."""
    name = value if isinstance(value, str) else getattr(value, "name", value)
    if isinstance(name, str):
        return _role_name(name, what)
    return str(valid(RoleName, name, f"{what} name"))


@lru_cache(maxsize=4096)
def _role_name(name: str, what: str) -> str:
    return str(valid(RoleName, name, f"{what} name"))


def role_names(values: Any, what: str = "role") -> list[str]:
    """A list of roles (names or role models), each once; a single name is not a list."""
    if isinstance(values, str | bytes | Mapping) or not isinstance(values, Iterable):
        raise ValidationError(
            f"invalid roles {shown(values)}: must be a list of {what} names "
            f"(not {type(values).__name__})"
        )
    return list(dict.fromkeys(role_name(value, what) for value in values))


def now() -> datetime:
    return datetime.now(UTC)
