"""`ledger audit ...`: digest, verify, replay, check and reports, for compliance auditors."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Final

import click

from ledger.audit import TITLES, Audit
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


@audit.command("digest")
@global_options
def audit_digest() -> None:
    """Print the head of the integrity chain (JSON) to keep elsewhere."""
    with _audit() as auditor:
        click.echo(auditor.digest().to_json())


@audit.command("verify")
@click.option(
    "--digest",
    "digest_file",
    type=click.File("rb"),
    help="A file holding what `ledger audit digest` printed earlier.",
)
@global_options
def audit_verify(digest_file: BinaryIO | None) -> None:
    """Recompute the whole chain; exit 1 naming the first bad position (or, with --digest,
    when the log holds no events)."""
    s = state()
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
    help="For access-review, dormant, privileged, sod-violations: as of this instant.",
)
@click.option(
    "--since",
    type=INSTANT,
    help="For role-changes, joiners-movers-leavers (default: a year ago).",
)
@click.option("--until", type=INSTANT, help="End of the period (default: now).")
@click.option(
    "--days",
    default=90,
    show_default=True,
    type=click.IntRange(min=1),
    help="For dormant: days without login.",
)
@click.option("--out", type=click.Path(dir_okay=False), help="Write to this file, not stdout.")
@click.option(
    "--unverified",
    is_flag=True,
    help="Report even when the integrity chain is broken, marked NOT VERIFIED.",
)
@global_options
def audit_report(
    name: str,
    fmt: str,
    at: datetime | None,
    since: datetime | None,
    until: datetime | None,
    days: int,
    out: str | None,
    unverified: bool,
) -> None:
    """Write a compliance report: access-review, role-changes, joiners-movers-leavers,
    dormant, privileged, or all of them (json, html). The integrity chain is verified first:
    a broken chain is an error (exit 1) unless --unverified."""
    names = list(TITLES) if name == "all" else [name]
    problem = None if out is None else sqlite_files.database_problem(Path(out))
    if problem is not None:
        raise ValidationError(
            f"invalid out {out!r}: {problem}, which a report never overwrites: name another file"
        )
    with _audit() as auditor:
        text = auditor.render(
            names, fmt, at=at, since=since, until=until, days=days, unverified=unverified
        )
    if out:
        try:
            Path(out).write_text(text, encoding="utf-8")
        except OSError as error:
            raise ValidationError(f"cannot write --out {out}: {error.strerror}") from None
        click.echo(f"wrote {printable(out)}", err=True)
    else:
        click.echo(text)
