"""`ledger audit stream --to amqp://... --queue Q`: every event of the log, as OCSF JSON, into
a durable RabbitMQ queue with publisher confirms: at least once, in log order, across crashes.

The design is the NATS streamer's (one message at a time, each confirmed by the broker before
the next; the cursor kept in the ledger's database after the confirmations), but RabbitMQ has
no broker-side de-duplication and no way to read a queue's last message without consuming it.
So a crash between a confirmation and the next cursor write (kill -9) makes the restart
publish again the events after the cursor: at most `CURSOR_EVERY` of them, each with the same
`message_id`, its log position, for the consumer to drop. Never a gap, never out of order."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import quote, unquote, urlsplit

import aio_pika
import aio_pika.exceptions
import aiormq.exceptions
from aiormq import spec

from ledger.application import Ledger
from ledger.audit import export
from ledger.audit.brokers import Streamed, StreamError, cursor_at, first_line, masked, redact
from ledger.errors import ValidationError
from ledger.storage import stream_cursors

SCHEMES: Final = ("amqp", "amqps")
QUEUE: Final = re.compile(r"[A-Za-z0-9_.:-]+")
QUEUE_LIMIT: Final = 255  # bytes, AMQP 0-9-1's short string
CURSOR_EVERY: Final = 100  # events between cursor writes: the most a restart repeats
CONNECT_TIMEOUT: Final = 5.0
CHAIN_LINK: Final = "Ledger-Chain-Link"


@dataclass(frozen=True)
class Target:
    """Where to publish: `url` as given (it may hold credentials, so it is never shown),
    `shown` without them."""

    url: str = field(repr=False)
    shown: str
    queue: str

    @property
    def cursor_name(self) -> str:
        return f"{self.shown}/{self.queue}"

    def redact(self, text: str) -> str:
        return redact(text, self.url)


def target(url: str, queue: str) -> Target:
    """The broker URL and queue, checked: ValidationError naming what is wrong, with any
    credentials in the URL masked."""
    given = f"invalid to {masked(url)!r}"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValidationError(
            f"{given}: give amqp://USER:PASSWORD@HOST:PORT/VHOST (the port a number from 1 to "
            "65535)"
        ) from None
    if parts.scheme not in SCHEMES or not parts.hostname or port == 0:
        raise ValidationError(f"{given}: give amqp://USER:PASSWORD@HOST:PORT/VHOST")
    try:
        parts.hostname.encode("idna")  # what connecting does: an empty or too long label fails
    except UnicodeError:
        raise ValidationError(
            f"{given}: host {parts.hostname!r} is not a host name (empty label, or one longer "
            "than 63 characters)"
        ) from None
    if parts.query or parts.fragment or "/" in parts.path[1:]:
        raise ValidationError(f"{given}: a broker address has a virtual host at most, no query")
    if len(queue.encode()) > QUEUE_LIMIT or not QUEUE.fullmatch(queue) or queue.startswith("amq."):
        raise ValidationError(
            f"invalid queue {queue!r}: letters, digits, _ . : and -, at most {QUEUE_LIMIT} "
            "characters, not starting with amq. (reserved by RabbitMQ)"
        )
    vhost = unquote(parts.path[1:]) if parts.path not in ("", "/") else "/"
    default = 5671 if parts.scheme == "amqps" else 5672
    # the vhost exactly, percent-encoded: `x` and `/x`, `/` and `//` are different vhosts and
    # keep different cursors; the default `/` is written as nothing, as cursors were named before
    shown_vhost = "" if vhost == "/" else quote(vhost, safe="")
    shown = f"{parts.scheme}://{parts.hostname}:{port or default}/{shown_vhost}"
    return Target(url, shown, queue)


def stream(
    led: Ledger,
    to: Target,
    *,
    follow: bool = False,
    interval: float = 1.0,
    stop: threading.Event | None = None,
    on_progress: Callable[[Streamed], None] | None = None,
) -> Streamed:
    """Publish the events after the cursor into the queue; with `follow`, keep publishing new
    ones (polling every `interval` seconds) until `stop` is set."""
    for name in ("aio_pika", "aiormq"):  # they log what they raise too: raised is enough
        logging.getLogger(name).addHandler(logging.NullHandler())
        logging.getLogger(name).propagate = False
    try:
        return asyncio.run(_stream(led, to, follow, interval, stop, on_progress))
    except (
        TimeoutError,
        OSError,
        UnicodeError,
        aio_pika.exceptions.AMQPException,
        aiormq.exceptions.AMQPError,
    ) as error:
        raise StreamError(f"cannot publish to {to.shown}: {to.redact(first_line(error))}") from None


async def _stream(
    led: Ledger,
    to: Target,
    follow: bool,
    interval: float,
    stop: threading.Event | None,
    on_progress: Callable[[Streamed], None] | None,
) -> Streamed:
    connection = await asyncio.wait_for(aio_pika.connect(to.url), CONNECT_TIMEOUT)
    try:
        # a message the broker returns (no queue: deleted meanwhile) raises, as a nack does;
        # without on_return_raises it would count as confirmed and the cursor skip it
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        await channel.declare_queue(to.queue, durable=True)
        position = cursor_at(led, to.cursor_name)
        published = 0
        while True:
            since_cursor = 0
            for item in export.recorded(led, after=position):
                payload = json.dumps(export.to_ocsf(item), separators=(",", ":")).encode()
                message = aio_pika.Message(
                    payload,
                    message_id=str(item.position),
                    headers={CHAIN_LINK: item.link},
                    content_type="application/json",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                )
                try:
                    confirmed: object = await channel.default_exchange.publish(
                        message, routing_key=to.queue
                    )
                except aiormq.exceptions.DeliveryError as error:
                    confirmed = getattr(error, "frame", None)
                if not isinstance(confirmed, spec.Basic.Ack):
                    # the events before it were confirmed: the restart starts after them
                    led.side.write_side([stream_cursors.advance(to.cursor_name, position)])
                    raise StreamError(_undelivered(to, item.position, position, confirmed))
                published += 1
                position = item.position
                since_cursor += 1
                if since_cursor >= CURSOR_EVERY:
                    led.side.write_side([stream_cursors.advance(to.cursor_name, position)])
                    since_cursor = 0
            led.side.write_side([stream_cursors.advance(to.cursor_name, position)])
            done = Streamed(published, 0, position, to.queue)
            if on_progress is not None:
                on_progress(done)
            if not follow or (stop is not None and stop.is_set()):
                return done
            await asyncio.sleep(interval)
            if stop is not None and stop.is_set():
                return done
    finally:
        await connection.close()


def _undelivered(to: Target, event: int, cursor: int, frame: object) -> str:
    if isinstance(frame, spec.Basic.Return):
        why = (
            f"the broker returned the event at position {event} unrouted "
            f"({frame.reply_code} {frame.reply_text}: no queue {to.queue}, deleted?)"
        )
    else:
        why = f"the broker refused the event at position {event} ({type(frame).__name__})"
    return (
        f"cannot publish to {to.shown} queue {to.queue}: {why}; stopped with the cursor at "
        f"position {cursor}, the last confirmed: run again once the queue is back"
    )
