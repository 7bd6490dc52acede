"""What the NATS and RabbitMQ streamers share: the outcome, the error, the cursor kept in the
ledger's database, and keeping a broker URL's credentials out of everything shown."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from ledger.application import Ledger
from ledger.errors import LedgerError
from ledger.storage import stream_cursors


class StreamError(LedgerError):
    """The broker could not be reached, or refused what was published."""


@dataclass(frozen=True)
class Streamed:
    published: int  # messages the stream stored
    repeated: int  # messages JetStream recognised as already stored (not stored again)
    position: int  # the cursor now
    stream: str


def cursor_at(led: Ledger, name: str) -> int:
    """The last position the broker of the cursor named `name` acknowledged (0: none)."""
    row = led.side.select_one(stream_cursors.SELECT, (name,))
    return 0 if row is None else int(row["position"])


def masked(url: str) -> str:
    """The URL with everything up to its last `@` (user, password, and any `@`, `/` or `:`
    in them) masked: shown even when the URL does not parse."""
    before, at, after = url.rpartition("@")
    if not at:
        return url
    scheme, separator, _ = before.partition("://")
    return f"{scheme}{separator}***@{after}" if separator else f"***@{after}"


def redact(text: str, url: str) -> str:
    """`text` without the secret of `url` (its password, or a token given alone), as written
    or percent-decoded."""
    userinfo = url.rpartition("@")[0].partition("://")[2]
    secret = userinfo.partition(":")[2] if ":" in userinfo else userinfo
    for form in sorted({secret, unquote(secret)} - {""}, key=len, reverse=True):
        text = text.replace(form, "***")
    return text


def first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
