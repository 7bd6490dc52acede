"""`ledger audit stream`: every event of the log, as OCSF JSON, published to NATS JetStream
exactly once, across crashes.

Each message's `Nats-Msg-Id` is the event's log position (JetStream drops a repeat within its
de-duplication window). Messages go out one at a time, each acknowledged before the next is
sent, so what the stream holds of the subject is always a prefix of the log. The cursor (the
last acknowledged position) is kept in the ledger's database after the acknowledgements; on a
start, the streamer resumes after the later of the cursor and the last message on the subject,
so a crash between an acknowledgement and the cursor's write (kill -9 at any instant) repeats
nothing, however long the streamer stayed down. The last message's `Ledger-Chain-Link` header
must be the log's link at its position: a subject fed by another ledger, or a log rewritten
since, is refused."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

import nats
import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import StreamConfig

from ledger.application import Ledger
from ledger.audit import export
from ledger.audit.brokers import Streamed, StreamError, cursor_at, first_line, masked, redact
from ledger.errors import Conflict, ValidationError
from ledger.storage import stream_cursors

SCHEMES: Final = ("nats", "tls")
SUBJECT: Final = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")
SUBJECT_LIMIT: Final = 255
CURSOR_EVERY: Final = 500  # events between cursor writes (a restart resumes from the stream)
DUPLICATE_WINDOW: Final = 600.0  # seconds, for a stream the streamer creates
CONNECT_TIMEOUT: Final = 5.0
ACK_TIMEOUT: Final = 10.0
MESSAGE_ID: Final = "Nats-Msg-Id"
CHAIN_LINK: Final = "Ledger-Chain-Link"


@dataclass(frozen=True)
class Target:
    """Where to publish: `url` as given (it may hold credentials, so it is never shown),
    `shown` without them."""

    url: str = field(repr=False)
    shown: str
    subject: str

    @property
    def cursor_name(self) -> str:
        return f"{self.shown}/{self.subject}"

    def redact(self, text: str) -> str:
        """`text` with the URL's credentials, if any, masked."""
        return redact(text, self.url)


def target(url: str, subject: str) -> Target:
    """The broker URL and subject, checked: ValidationError naming what is wrong, with any
    credentials in the URL masked."""
    given = f"invalid to {masked(url)!r}"
    # urllib's own messages can quote the credentials: never pass them on
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ValidationError(f"{given}: give nats://HOST:PORT (or tls://HOST:PORT)") from None
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise ValidationError(f"{given}: the port must be a number from 1 to 65535")
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise ValidationError(f"{given}: give nats://HOST:PORT (or tls://HOST:PORT)")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValidationError(f"{given}: a broker address has no path or query")
    if len(subject) > SUBJECT_LIMIT or not SUBJECT.fullmatch(subject):
        raise ValidationError(
            f"invalid subject {subject!r}: dot-separated tokens of letters, digits, _ and - "
            f"(no wildcards or spaces), at most {SUBJECT_LIMIT} characters"
        )
    shown = f"{parts.scheme}://{parts.hostname}:{port or 4222}"
    return Target(url, shown, subject)


def stream(
    led: Ledger,
    to: Target,
    *,
    follow: bool = False,
    interval: float = 1.0,
    stop: threading.Event | None = None,
    on_progress: Callable[[Streamed], None] | None = None,
) -> Streamed:
    """Publish the events after the cursor; with `follow`, keep publishing new ones (polling
    every `interval` seconds) until `stop` is set."""
    try:
        return asyncio.run(_stream(led, to, follow, interval, stop, on_progress))
    except (TimeoutError, OSError, nats.errors.Error) as error:
        raise StreamError(f"cannot publish to {to.shown}: {to.redact(first_line(error))}") from None


async def _stream(
    led: Ledger,
    to: Target,
    follow: bool,
    interval: float,
    stop: threading.Event | None,
    on_progress: Callable[[Streamed], None] | None,
) -> Streamed:
    connection = await nats.connect(
        to.url,
        connect_timeout=CONNECT_TIMEOUT,
        allow_reconnect=False,
        # nats-py retries the first connection too, 60 times 2 s apart by default
        max_reconnect_attempts=2,
        reconnect_time_wait=0.5,
        error_cb=_quiet,
    )
    try:
        jetstream = connection.jetstream(timeout=ACK_TIMEOUT)
        name = await _stream_for(jetstream, to.subject)
        position = max(cursor(led, to), await _last_on_stream(led, jetstream, name, to.subject))
        led.side.write_side([stream_cursors.advance(to.cursor_name, position)])
        published = repeated = 0
        while True:
            since_cursor = 0
            for item in export.recorded(led, after=position):
                payload = json.dumps(export.to_ocsf(item), separators=(",", ":")).encode()
                ack = await jetstream.publish(
                    to.subject,
                    payload,
                    stream=name,
                    headers={MESSAGE_ID: str(item.position), CHAIN_LINK: item.link},
                )
                repeated += bool(ack.duplicate)
                published += not ack.duplicate
                position = item.position
                since_cursor += 1
                if since_cursor >= CURSOR_EVERY:
                    led.side.write_side([stream_cursors.advance(to.cursor_name, position)])
                    since_cursor = 0
            led.side.write_side([stream_cursors.advance(to.cursor_name, position)])
            done = Streamed(published, repeated, position, name)
            if on_progress is not None:
                on_progress(done)
            if not follow or (stop is not None and stop.is_set()):
                return done
            await asyncio.sleep(interval)
            if stop is not None and stop.is_set():
                return done
    finally:
        await connection.close()


async def _quiet(_error: Exception) -> None:
    """nats-py reports connection errors here as well as raising them: raised is enough."""


def cursor(led: Ledger, to: Target) -> int:
    return cursor_at(led, to.cursor_name)


async def _stream_for(jetstream: JetStreamContext, subject: str) -> str:
    """The stream that covers the subject; one made for it if there is none."""
    try:
        return await jetstream.find_stream_name_by_subject(subject)
    except nats.js.errors.NotFoundError:
        pass
    name = "LEDGER_" + re.sub(r"[^A-Za-z0-9_-]", "_", subject)
    try:
        await jetstream.add_stream(
            StreamConfig(name=name, subjects=[subject], duplicate_window=DUPLICATE_WINDOW)
        )
    except nats.js.errors.BadRequestError:
        # made at the same time by another streamer, or the name taken for other subjects
        return await jetstream.find_stream_name_by_subject(subject)
    return name


async def _last_on_stream(led: Ledger, jetstream: JetStreamContext, name: str, subject: str) -> int:
    """The log position of the subject's last message (0: none), after checking it carries
    this log's link at that position."""
    try:
        last = await jetstream.get_last_msg(name, subject)
    except nats.js.errors.NotFoundError:
        return 0
    headers: dict[str, Any] = last.headers or {}
    found = str(headers.get(MESSAGE_ID, ""))
    if not found.isdigit():
        raise Conflict(
            f"the subject {subject!r} of stream {name} ends with a message that is not a "
            f"ledger event (message id {found[:40]!r}): stream to a subject of its own"
        )
    position = int(found)
    row = led.side.select_one(export.SELECT_LINK, (position,))
    if row is None or str(row["hash"]) != headers.get(CHAIN_LINK):
        raise Conflict(
            f"the subject {subject!r} of stream {name} ends with position {position}, which is "
            "not this log's event at that position (another ledger's, or this log was "
            "rewritten): stream to a subject of its own"
        )
    return position
