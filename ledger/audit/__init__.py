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
from pydantic import Field

from ledger.application import Ledger
from ledger.audit import html, integrity, reports, review_report
from ledger.audit import replay as replaying
from ledger.audit.integrity import Digest, NotVerified, Verification
from ledger.commands.reviews import CampaignName
from ledger.errors import ValidationError
from ledger.storage import chain
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

    def verified(self, *, unverified: bool = False) -> Verification:
        """Verify the chain for a report, after the read models have caught up: raise
        NotVerified if it is broken, or ends before the events the read models show, unless
        `unverified` (then the report is marked NOT VERIFIED)."""
        projected = self.read_model.position()
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
        if not result.ok and not unverified:
            raise NotVerified(
                f"the integrity chain does not verify ({result.summary()}), so a report could "
                "show altered history; see `ledger audit verify`, or pass --unverified "
                "(unverified=True) for a report marked NOT VERIFIED"
            )
        return result

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
    ) -> pd.DataFrame:
        """One report as a DataFrame, made after verifying the chain (see `verified`); its
        `attrs["verified"]` holds the verified head {position, hash, events}, or None with
        `attrs["warning"]` when the chain is broken and `unverified` was given."""
        asked = Asked.of([name], at, since, until, days, campaign)
        verification = self.verified(unverified=unverified)
        with self._reported(verification) as rm:
            frame = _report(rm, name, asked)
        frame.attrs.update(verified_block(verification))
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
    ) -> str:
        """Reports as CSV (one report), JSON or one self-contained HTML page, made after
        verifying the chain (see `verified`). JSON and HTML state the verified head; with
        `unverified` and a broken chain, every format opens with a NOT VERIFIED warning."""
        if fmt not in FORMATS:
            raise ValidationError(f"unknown format {fmt!r}; one of: {', '.join(FORMATS)}")
        if fmt == "csv" and len(names) != 1:
            raise ValidationError("CSV holds one report: name one, not 'all'")
        asked = Asked.of(names, at, since, until, days, campaign)
        verification = self.verified(unverified=unverified)
        with self._reported(verification) as rm:
            return self._rendered(rm, names, fmt, asked, verification)

    def _rendered(
        self,
        rm: ReadModel,
        names: list[str],
        fmt: str,
        asked: Asked,
        verification: Verification,
    ) -> str:
        block = verified_block(verification)
        frames = {name: _report(rm, name, asked) for name in names}
        if fmt == "csv":
            text = str(next(iter(frames.values())).map(_csv_time).to_csv(index=False))
            return text if verification.ok else f"# {block['warning']}\n{text}"
        if fmt == "json":
            data = {name: records(frame) for name, frame in frames.items()}
            return json.dumps({**block, "reports": data}, indent=1)
        end = asked.until or asked.at or datetime.now(UTC)
        start = asked.since or reports.days_before(end, 365)
        title = "Access audit" if len(frames) > 1 else TITLES[names[0]]
        return html.render(
            title,
            datetime.now(UTC),
            (start, end),
            [(TITLES[name], frame) for name, frame in frames.items()],
            reports.privileged_timeline(rm, start, end),
            verification,
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


def _csv_time(value: Any) -> Any:
    """A report's instants in CSV as 2026-03-01T09:00:00+0000, the year always four digits
    (strftime's %Y writes year 1 as "1")."""
    if isinstance(value, datetime) and not pd.isna(value):
        return f"{value.year:04d}-{value.strftime('%m-%dT%H:%M:%S%z')}"
    return value


def verified_block(verification: Verification) -> dict[str, Any]:
    """What a report says of the chain it was made from: `verified`, the head verified
    {position, hash, events}; or None and a NOT VERIFIED `warning` when the chain is broken."""
    if not verification.ok:
        return {"verified": None, "warning": f"NOT VERIFIED: {verification.summary()}"}
    head = verification.head
    return {
        "verified": {
            "position": 0 if head is None else head.position,
            "hash": chain.GENESIS if head is None else head.hash,
            "events": verification.events,
        }
    }


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
    "NotVerified",
    "Verification",
    "digest",
    "reports",
    "verify",
]
