"""`ledger audit ...`: digest, verify, replay, check and reports, for compliance auditors."""

from __future__ import annotations

import re
import sys
import time
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Final

import click

from ledger.audit import TITLES, Audit, brokers, signing
from ledger.audit import amqp as amqp_streaming
from ledger.audit import export as exporting
from ledger.audit import stream as streaming
from ledger.cli.state import INSTANT, global_options, printable, state
from ledger.errors import ValidationError
from ledger.storage import sqlite_files

DIGEST_FILE_LIMIT: Final = 65_536  # bytes; a digest is about 150


def _audit() -> Audit:
    s = state()
    s.require_ledger()  # an audit sets up no ledger where there is none
    return Audit(s.url)


@click.group()
def audit() -> None:
    """Prove the log was not altered, replay it to any instant, and report on it."""


@audit.command("keygen")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The private key file to write (mode 0600); the public key goes to OUT.pub.",
)
@global_options
def audit_keygen(out: Path) -> None:
    """Make an Ed25519 key pair for signed digests. The private key is written, never
    printed: keep it off the machine that holds the ledger."""
    public_path, key = signing.keygen(out)
    state().emit(
        {"private_key": str(out), "public_key": str(public_path), "key_id": key},
        printable(
            f"wrote private key {out} (mode 0600) and public key {public_path}, key id {key}"
        ),
    )


INTERVAL: Final = re.compile(r"([1-9][0-9]{0,6})([smhd])")
SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
LONGEST_INTERVAL: Final = 366 * 86_400


def _interval(_ctx: click.Context, _param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    found = INTERVAL.fullmatch(value)
    seconds = None if found is None else int(found[1]) * SECONDS[found[2]]
    if seconds is None or seconds > LONGEST_INTERVAL:
        raise ValidationError(
            f"invalid every {value!r}: give a whole number and a unit, s, m, h or d (e.g. 1h), "
            "of at most 366 days"
        )
    return float(seconds)


@audit.command("digest")
@click.option(
    "--sign",
    "key_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Sign the digest with this private key (from `ledger audit keygen`) and store it in "
    "the database's digest chain.",
)
@click.option(
    "--every",
    callback=_interval,
    help="With --sign: keep signing a digest every INTERVAL (e.g. 1h, 15m), until stopped.",
)
@click.option(
    "--count",
    type=click.IntRange(min=1),
    help="With --every: stop after this many signed digests.",
)
@global_options
def audit_digest(key_file: Path | None, every: float | None, count: int | None) -> None:
    """Print the head of the integrity chain (JSON) to keep elsewhere; with --sign, verify the
    chain, sign its head and store the signed digest in the database."""
    if key_file is None:
        if every is not None or count is not None:
            raise click.UsageError("--every and --count go with --sign KEY")
        with _audit() as auditor:
            click.echo(auditor.digest().to_json())
        return
    if count is not None and every is None:
        raise click.UsageError("--count goes with --every")
    private = signing.load_private_key(key_file)
    made = 0
    with _audit() as auditor:
        while True:
            signed = signing.sign(auditor.ledger, private)
            click.echo(signed.to_json())
            made += 1
            if every is None or (count is not None and made >= count):
                return
            time.sleep(every)


@audit.command("verify")
@click.option(
    "--digest",
    "digest_file",
    type=click.File("rb"),
    help="A file holding what `ledger audit digest` printed earlier.",
)
@click.option(
    "--public-key",
    "public_key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Check the log against every signed digest stored in the database, and their chain, "
    "with this public key (KEY.pub from `ledger audit keygen`).",
)
@global_options
def audit_verify(digest_file: BinaryIO | None, public_key: Path | None) -> None:
    """Recompute the whole chain; exit 1 naming the first bad position (or, with --digest,
    when the log holds no events; with --public-key, naming the signed digest the log or the
    digest chain fails)."""
    s = state()
    if public_key is not None:
        if digest_file is not None:
            raise click.UsageError("give --digest or --public-key, not both")
        public = signing.load_public_key(public_key)
        with _audit() as auditor:
            signed = signing.verify_signed(auditor.ledger, public)
        s.emit(
            {
                "ok": signed.ok,
                "events": signed.chain.events,
                "head": asdict(signed.chain.head) if signed.chain.head else None,
                "signed_digests": signed.digests,
                "last_signed_digest": asdict(signed.last) if signed.last else None,
                "problem": signed.problem,
                "summary": signed.summary(),
            },
            signed.summary(),
        )
        if not signed.ok:
            raise SystemExit(1)
        return
    kept = None
    if digest_file is not None:
        kept = digest_file.read(DIGEST_FILE_LIMIT + 1)
        if len(kept) > DIGEST_FILE_LIMIT:
            raise ValidationError(
                f"not a digest as `ledger audit digest` prints it: {digest_file.name} holds "
                f"more than {DIGEST_FILE_LIMIT} bytes"
            )
    with _audit() as auditor:
        result = auditor.verify(kept)
    s.emit(
        {
            "ok": result.ok,
            "events": result.events,
            "head": asdict(result.head) if result.head else None,
            "first_bad_position": result.first_bad_position,
            "problem": result.problem,
            "summary": result.summary(),
        },
        result.summary(),
    )
    if not result.ok:
        raise SystemExit(1)


@audit.command("export")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(exporting.FORMATS),
    default="ocsf",
    show_default=True,
    help="ocsf: OCSF 1.8.0 events, one JSON object a line; jsonl: the ledger's own records; "
    "csv: one row an event.",
)
@click.option(
    "--after",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Export the events after this log position (exclusive).",
)
@click.option("--until", type=INSTANT, help="Only events recorded at or before this instant.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this new file (never overwritten), not stdout.",
)
@global_options
def audit_export(fmt: str, after: int, until: datetime | None, out: Path | None) -> None:
    """Export the log's events, in log order, for a SIEM: streamed page by page, so memory
    stays flat however long the log."""
    with _audit() as auditor:
        if out is None:
            done = exporting.export(auditor.ledger, sys.stdout, fmt, after=after, until=until)
        else:
            done = exporting.export_to_file(auditor.ledger, out, fmt, after=after, until=until)
    span = "" if done.first is None else f" (positions {done.first} to {done.last})"
    where = "stdout" if out is None else str(out)
    click.echo(printable(f"exported {done.events} events{span} as {fmt} to {where}"), err=True)


@audit.command("stream")
@click.option(
    "--to",
    "to",
    required=True,
    help="The broker: nats://HOST:PORT (JetStream enabled), or RabbitMQ as "
    "amqp://USER:PASSWORD@HOST:PORT/VHOST.",
)
@click.option("--subject", help="NATS: the subject to publish on, e.g. ledger.events.")
@click.option("--queue", help="RabbitMQ: the durable queue to publish into, e.g. ledger-events.")
@click.option("--follow", is_flag=True, help="Keep publishing new events until interrupted.")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.05, max=3600),
    default=1.0,
    show_default=True,
    help="With --follow: seconds between looks for new events.",
)
@global_options
def audit_stream(
    to: str, subject: str | None, queue: str | None, follow: bool, interval: float
) -> None:
    """Publish every event, as OCSF JSON, in log order, with its log position as the message
    id and the cursor kept in the ledger's database. NATS JetStream: exactly once across
    crashes (JetStream drops a repeated id). RabbitMQ: at least once (a restart after a crash
    may repeat up to 100 events, same ids), with publisher confirms."""
    rabbit = to.startswith(amqp_streaming.SCHEMES)
    if rabbit and (queue is None or subject is not None):
        raise click.UsageError("an amqp:// broker takes --queue, not --subject")
    if not rabbit and (subject is None or queue is not None):
        raise click.UsageError("a nats:// broker takes --subject, not --queue")

    shown_published = [0]  # following: a line only when a poll published something new

    def progress(done: brokers.Streamed) -> None:
        if not follow or done.published > shown_published[0]:
            shown_published[0] = done.published
            where = f"queue {queue}" if rabbit else f"subject {subject} (stream {done.stream})"
            click.echo(
                printable(
                    f"published {done.published} events to {shown} {where}; cursor at "
                    f"position {done.position}"
                    + (f"; {done.repeated} were already on the stream" if done.repeated else "")
                ),
                err=True,
            )

    if rabbit:
        assert queue is not None
        rabbit_target = amqp_streaming.target(to, queue)
        shown = rabbit_target.shown
    else:
        assert subject is not None
        nats_target = streaming.target(to, subject)
        shown = nats_target.shown
    with _audit() as auditor:
        try:
            if rabbit:
                amqp_streaming.stream(
                    auditor.ledger,
                    rabbit_target,
                    follow=follow,
                    interval=interval,
                    on_progress=progress,
                )
            else:
                streaming.stream(
                    auditor.ledger,
                    nats_target,
                    follow=follow,
                    interval=interval,
                    on_progress=progress,
                )
        except KeyboardInterrupt:
            click.echo("stopped", err=True)


@audit.command("replay")
@click.option(
    "--until", required=True, type=INSTANT, help="The instant (a date or a time; see --tz)."
)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False),
    help="The SQLite file to write: a new one, or a replay made earlier (replaced).",
)
@global_options
def audit_replay(until: datetime, out: str) -> None:
    """Build the read models as they stood at --until into a SQLite file."""
    s = state()
    with _audit() as auditor:
        count = auditor.replay(until, out)
    url = f"sqlite:///{Path(out)}"
    s.emit(
        {"events": count, "out": url},
        printable(
            f"replayed {count} events up to {until.isoformat()} into {out}; query it with "
            f"ReadModel(url={url!r}) or ledger --db {url} query ..."
        ),
    )


@audit.command("check")
@global_options
def audit_check() -> None:
    """Compare the live read models with a fresh replay of the log; exit 1 on a difference."""
    s = state()
    with _audit() as auditor:
        position, found = auditor.check()
    s.emit(
        {"position": position, "differences": found},
        "\n".join(found)
        if found
        else f"the live read models equal a fresh replay up to position {position}",
    )
    if found:
        raise SystemExit(1)


@audit.command("report")
@click.argument("name", type=click.Choice([*TITLES, "all"]))
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "json", "html"]), default="csv", show_default=True
)
@click.option(
    "--at",
    type=INSTANT,
    help="For access-review, dormant, privileged, sod-violations, review: as of this instant.",
)
@click.option(
    "--since",
    type=INSTANT,
    help="For role-changes, joiners-movers-leavers, failed-logins, denied (default: a year ago).",
)
@click.option("--until", type=INSTANT, help="End of the period (default: now).")
@click.option(
    "--days",
    default=90,
    show_default=True,
    type=click.IntRange(min=1),
    help="For dormant: days without login.",
)
@click.option("--campaign", help="For review: this campaign only (default: every campaign).")
@click.option("--out", type=click.Path(dir_okay=False), help="Write to this file, not stdout.")
@click.option(
    "--unverified",
    is_flag=True,
    help="Report even when the integrity chain (or, with --public-key, the signed digests) "
    "does not verify, marked NOT VERIFIED.",
)
@click.option(
    "--public-key",
    "public_key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also check the log against the stored signed digests with this public key, as "
    "`ledger audit verify --public-key` does, and stamp the report with the last one.",
)
@global_options
def audit_report(
    name: str,
    fmt: str,
    at: datetime | None,
    since: datetime | None,
    until: datetime | None,
    days: int,
    campaign: str | None,
    out: str | None,
    unverified: bool,
    public_key: Path | None,
) -> None:
    """Write a compliance report: access-review, role-changes, joiners-movers-leavers,
    dormant, privileged, failed-logins, sod-violations, denied, review, or all of them (json,
    html). The integrity chain is verified first (with --public-key, against the signed
    digests too), and the report is stamped with what was checked: a failed check is an error
    (exit 1) unless --unverified."""
    names = list(TITLES) if name == "all" else [name]
    problem = None if out is None else sqlite_files.database_problem(Path(out))
    if problem is not None:
        raise ValidationError(
            f"invalid out {out!r}: {problem}, which a report never overwrites: name another file"
        )
    public = None if public_key is None else signing.load_public_key(public_key)
    with _audit() as auditor:
        text = auditor.render(
            names,
            fmt,
            at=at,
            since=since,
            until=until,
            days=days,
            unverified=unverified,
            campaign=campaign,
            public_key=public,
        )
    if out:
        try:
            Path(out).write_text(text, encoding="utf-8")
        except OSError as error:
            raise ValidationError(f"cannot write --out {out}: {error.strerror}") from None
        click.echo(f"wrote {printable(out)}", err=True)
    else:
        click.echo(text)
