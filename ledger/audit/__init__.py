"""The auditors' facade: the integrity chain (digest, verify), point-in-time replay, the
live-versus-replay check, and the compliance reports. It sits above both the write side and
the read side."""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Annotated, Any, Final
from uuid import UUID

import pandas as pd
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import Field

from ledger.application import Ledger
from ledger.audit import html, integrity, reports, review_report, signing
from ledger.audit import replay as replaying
from ledger.audit.evidence import Evidence, csv_cell, csv_comment
from ledger.audit.integrity import Digest, NotVerified, Verification
from ledger.commands.reviews import CampaignName
from ledger.errors import ValidationError
from ledger.validation import Moment, optional, valid
from projections import ReadModel

FORMATS: Final = ("csv", "json", "html")
TITLES: Final = {
    "access-review": "Access review",
    "role-changes": "Role changes",
    "joiners-movers-leavers": "Joiners, movers and leavers",
    "dormant": "Dormant users",
    "privileged": "Holders of privileged roles",
    "failed-logins": "Failed logins",
    "sod-violations": "Separation-of-duties violations",
    "denied": "Commands refused by permission checks",
    "review": "Access-review campaigns",
}

DormantDays = Annotated[int, Field(strict=True, ge=1, le=36_525)]  # up to a hundred years
PublicKey = Ed25519PublicKey | str | Path  # a key, or the path of its .pub file


class Audit:
    """`Audit(url=None)`: the same URL resolution as `Ledger`; use it as a context manager."""

    def __init__(self, url: str | None = None) -> None:
        self.ledger = Ledger(url)
        self._read_model: ReadModel | None = None

    def __enter__(self) -> Audit:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._read_model is not None:
            self._read_model.close()
        self.ledger.close()

    @property
    def read_model(self) -> ReadModel:
        """The live read models, caught up."""
        if self._read_model is None:
            self._read_model = ReadModel(self.ledger.url)
            self._read_model.catch_up()
        return self._read_model

    # -- integrity ------------------------------------------------------------------------------

    def digest(self) -> Digest:
        return integrity.digest(self.ledger)

    def verify(self, digest: Digest | str | bytes | None = None) -> Verification:
        if isinstance(digest, Digest):
            digest = digest.to_json()  # checked as if it had been kept in a file
        kept = None if digest is None else Digest.from_json(digest)
        return integrity.verify(self.ledger, kept)

    def verified(
        self, *, unverified: bool = False, public_key: PublicKey | None = None
    ) -> Evidence:
        """Verify the chain for a report, after the read models have caught up, and with
        `public_key` check it against the stored signed digests as `verify_signed` does
        (`ledger audit verify --public-key`): raise NotVerified if either fails, or the log
        ends before the events the read models show, unless `unverified` (then the report is
        marked NOT VERIFIED). The evidence says what was checked and what was not."""
        public = _public_key(public_key)
        projected = self.read_model.position()
        # the digests are read before the chain is verified, as `verify --public-key` does: a
        # digest signed meanwhile may be of events this verification does not see
        try:
            newest, malformed = signing.last_stored(self.ledger), None
        except signing.MalformedDigest as error:
            newest, malformed = None, str(error)
        result = self.verify()
        head = 0 if result.head is None else result.head.position
        if result.ok and projected > head:
            result = Verification(
                False,
                result.events,
                result.head,
                head + 1,
                f"the read models show events up to position {projected}, the log ends at "
                f"{head} (events removed)",
            )
        signed = None
        if public is not None and malformed is None:
            upto = 0 if newest is None else newest.number
            signed = signing.verify_signed(self.ledger, public, result, upto)
        evidence = Evidence(result, signed, newest, malformed)
        if not evidence.ok and not unverified:
            failed = (
                "the integrity chain does not verify"
                if not result.ok
                else "the signed digests do not verify"
            )
            see = "verify" if not result.ok else "verify --public-key"
            raise NotVerified(
                f"{failed} ({evidence.problem()}), so a report could show altered history; see "
                f"`ledger audit {see}`, or pass --unverified (unverified=True) for a report "
                "marked NOT VERIFIED"
            )
        return evidence

    # -- replay ---------------------------------------------------------------------------------

    def replay(self, until: Any, out: str | Path) -> int:
        moment = optional(Moment, until, "until")
        if moment is None:
            raise ValidationError("invalid until None: give the instant to replay up to")
        return replaying.replay(self.ledger, moment, out)

    def check(self) -> tuple[int, list[str]]:
        return replaying.check(self.ledger, self.read_model)

    # -- reports --------------------------------------------------------------------------------

    def report(
        self,
        name: str,
        *,
        at: Any = None,
        since: Any = None,
        until: Any = None,
        days: int = 90,
        unverified: bool = False,
        campaign: str | None = None,
        public_key: PublicKey | None = None,
    ) -> pd.DataFrame:
        """One report as a DataFrame, made after verifying the chain (see `verified`); its
        attrs are the evidence as JSON carries it: `verified` (the head {position, hash,
        events}, or None), `signed_digest`, and a NOT VERIFIED `warning` when not verified
        (then only with `unverified`)."""
        asked = Asked.of([name], at, since, until, days, campaign)
        evidence = self.verified(unverified=unverified, public_key=public_key)
        with self._reported(evidence.chain) as rm:
            frame = _report(rm, name, asked)
        frame.attrs.update(evidence.block())
        return frame

    @contextlib.contextmanager
    def _reported(self, verification: Verification) -> Iterator[ReadModel]:
        """The read models a report is made from: on a verified chain, a fresh replay of the
        events verified (the live read models are tables anyone with the database can edit,
        and the chain says nothing of them); on a broken one (NOT VERIFIED), the live ones."""
        if not verification.ok:
            yield self.read_model
            return
        head = 0 if verification.head is None else verification.head.position
        with tempfile.TemporaryDirectory(prefix="ledger-report-") as folder:
            # opened as a replay file is (the keys stay in the ledger), and deleted at the end
            scratch = f"sqlite:///{Path(folder) / 'replay.db'}"
            fresh = ReadModel(scratch, source=self.ledger, page_size=2000)
            try:
                fresh.catch_up(stop=head)
                yield fresh
            finally:
                fresh.close()

    def render(
        self,
        names: list[str],
        fmt: str,
        *,
        at: Any = None,
        since: Any = None,
        until: Any = None,
        days: int = 90,
        unverified: bool = False,
        campaign: str | None = None,
        public_key: PublicKey | None = None,
    ) -> str:
        """Reports as CSV (one report), JSON or one self-contained HTML page, made after
        verifying the chain (see `verified`), each stamped with the evidence: CSV opens with
        `# ` comment lines, JSON has `verified` and `signed_digest` fields, HTML an Evidence
        section; not verified (only with `unverified`), each opens with NOT VERIFIED."""
        if fmt not in FORMATS:
            raise ValidationError(f"unknown format {fmt!r}; one of: {', '.join(FORMATS)}")
        if fmt == "csv" and len(names) != 1:
            raise ValidationError("CSV holds one report: name one, not 'all'")
        asked = Asked.of(names, at, since, until, days, campaign)
        evidence = self.verified(unverified=unverified, public_key=public_key)
        with self._reported(evidence.chain) as rm:
            return self._rendered(rm, names, fmt, asked, evidence)

    def _rendered(
        self,
        rm: ReadModel,
        names: list[str],
        fmt: str,
        asked: Asked,
        evidence: Evidence,
    ) -> str:
        frames = {name: _report(rm, name, asked) for name in names}
        if fmt == "csv":
            text = str(next(iter(frames.values())).map(_csv_value).to_csv(index=False))
            return "".join(f"{csv_comment(line)}\n" for line in evidence.lines()) + text
        if fmt == "json":
            data = {name: records(frame) for name, frame in frames.items()}
            return json.dumps({**evidence.block(), "reports": data}, indent=1)
        end = asked.until or asked.at or datetime.now(UTC)
        start = asked.since or reports.days_before(end, 365)
        title = "Access audit" if len(frames) > 1 else TITLES[names[0]]
        return html.render(
            title,
            datetime.now(UTC),
            (start, end),
            [(TITLES[name], frame) for name, frame in frames.items()],
            reports.privileged_timeline(rm, start, end),
            evidence,
        )


@dataclass(frozen=True)
class Asked:
    """A report request's arguments, checked before the work (verifying the chain) starts."""

    at: datetime | None
    since: datetime | None
    until: datetime | None
    days: int
    campaign: str | None = None
    """For `review`: the campaign (None: every campaign)."""

    @classmethod
    def of(
        cls,
        names: list[str],
        at: Any,
        since: Any,
        until: Any,
        days: Any,
        campaign: Any = None,
    ) -> Asked:
        for name in names:
            if name not in TITLES:
                raise ValidationError(f"unknown report {name!r}; one of: {', '.join(TITLES)}")
        return cls(
            optional(Moment, at, "at"),
            optional(Moment, since, "since"),
            optional(Moment, until, "until"),
            valid(DormantDays, days, "days"),
            None if campaign is None else valid(CampaignName, campaign, "campaign"),
        )


def _report(rm: ReadModel, name: str, asked: Asked) -> pd.DataFrame:
    end = asked.until or asked.at or datetime.now(UTC)
    start = asked.since or reports.days_before(end, 365)
    if name == "access-review":
        return reports.access_review(rm, asked.at)
    if name == "role-changes":
        return reports.role_changes(rm, start, end)
    if name == "joiners-movers-leavers":
        return reports.joiners_movers_leavers(rm, start, end)
    if name == "dormant":
        return reports.dormant_users(rm, asked.days, asked.at)
    if name == "privileged":
        return reports.privileged_holders(rm, asked.at)
    if name == "failed-logins":
        return reports.failed_logins(rm, start, end)
    if name == "sod-violations":
        return reports.sod_violations(rm, asked.at)
    if name == "denied":
        return reports.denied(rm, start, end)
    if name == "review":
        return review_report.review(rm, asked.campaign, asked.at)
    raise ValidationError(f"unknown report {name!r}; one of: {', '.join(TITLES)}")


def _csv_value(value: Any) -> Any:
    """A report's cell in CSV: instants as 2026-03-01T09:00:00+0000, the year always four
    digits (strftime's %Y writes year 1 as "1"); text never a formula (`csv_cell`)."""
    if isinstance(value, datetime) and not pd.isna(value):
        return f"{value.year:04d}-{value.strftime('%m-%dT%H:%M:%S%z')}"
    return csv_cell(value)


def _public_key(key: PublicKey | None) -> Ed25519PublicKey | None:
    if key is None or isinstance(key, Ed25519PublicKey):
        return key
    return signing.load_public_key(Path(key))


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A report's rows as JSON-ready dicts: ids as strings, times as ISO 8601, no NaN."""

    def plain(value: Any) -> Any:
        if value is None or value is pd.NaT or (isinstance(value, float) and pd.isna(value)):
            return None
        if isinstance(value, UUID):
            return str(value)
        if isinstance(value, datetime):
            return value.isoformat()
        if hasattr(value, "item"):  # numpy scalars
            return value.item()
        return value

    return [
        {str(key): plain(value) for key, value in row.items()}
        for row in frame.astype(object).to_dict(orient="records")
    ]


def digest(*, url: str | None = None) -> Digest:
    """The head of the integrity chain (position, hash, time), to keep elsewhere."""
    with Audit(url) as audit:
        return audit.digest()


def verify(digest: Digest | str | None = None, *, url: str | None = None) -> Verification:
    """Recompute the whole chain; with a kept digest, check the log still extends it."""
    with Audit(url) as audit:
        return audit.verify(digest)


__all__ = [
    "TITLES",
    "Audit",
    "Digest",
    "Evidence",
    "NotVerified",
    "Verification",
    "digest",
    "reports",
    "verify",
]
