"""The auditors' facade: the integrity chain (digest, verify), point-in-time replay, the
live-versus-replay check, and the compliance reports. It sits above both the write side and
the read side."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Final
from uuid import UUID

import pandas as pd

from ledger.application import Ledger
from ledger.audit import html, integrity, reports
from ledger.audit import replay as replaying
from ledger.audit.integrity import Digest, Verification
from ledger.errors import ValidationError
from ledger.validation import Moment, optional
from projections import ReadModel

FORMATS: Final = ("csv", "json", "html")
TITLES: Final = {
    "access-review": "Access review",
    "role-changes": "Role changes",
    "joiners-movers-leavers": "Joiners, movers and leavers",
    "dormant": "Dormant users",
    "privileged": "Holders of privileged roles",
    "failed-logins": "Failed logins",
}


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

    def verify(self, digest: Digest | str | None = None) -> Verification:
        kept = Digest.from_json(digest) if isinstance(digest, str) else digest
        return integrity.verify(self.ledger, kept)

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
        self, name: str, *, at: Any = None, since: Any = None, until: Any = None, days: int = 90
    ) -> pd.DataFrame:
        moment = optional(Moment, at, "at")
        end = optional(Moment, until, "until") or moment or datetime.now(UTC)
        start = optional(Moment, since, "since") or end - timedelta(days=365)
        rm = self.read_model
        if name == "access-review":
            return reports.access_review(rm, moment)
        if name == "role-changes":
            return reports.role_changes(rm, start, end)
        if name == "joiners-movers-leavers":
            return reports.joiners_movers_leavers(rm, start, end)
        if name == "dormant":
            return reports.dormant_users(rm, days, moment)
        if name == "privileged":
            return reports.privileged_holders(rm, moment)
        if name == "failed-logins":
            return reports.failed_logins(rm, start, end)
        raise ValidationError(f"unknown report {name!r}; one of: {', '.join(TITLES)}")

    def render(
        self,
        names: list[str],
        fmt: str,
        *,
        at: Any = None,
        since: Any = None,
        until: Any = None,
        days: int = 90,
    ) -> str:
        """Reports as CSV (one report), JSON or one self-contained HTML page."""
        if fmt not in FORMATS:
            raise ValidationError(f"unknown format {fmt!r}; one of: {', '.join(FORMATS)}")
        frames = {
            name: self.report(name, at=at, since=since, until=until, days=days) for name in names
        }
        if fmt == "csv":
            if len(frames) != 1:
                raise ValidationError("CSV holds one report: name one, not 'all'")
            return str(
                next(iter(frames.values())).to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%S%z")
            )
        if fmt == "json":
            data = {name: records(frame) for name, frame in frames.items()}
            return json.dumps(data if len(data) > 1 else next(iter(data.values())), indent=1)
        end = optional(Moment, until, "until") or optional(Moment, at, "at") or datetime.now(UTC)
        start = optional(Moment, since, "since") or end - timedelta(days=365)
        title = "Access audit" if len(frames) > 1 else TITLES[names[0]]
        return html.render(
            title,
            datetime.now(UTC),
            (start, end),
            [(TITLES[name], frame) for name, frame in frames.items()],
            reports.privileged_timeline(self.read_model, start, end),
        )


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


__all__ = ["TITLES", "Audit", "Digest", "Verification", "digest", "reports", "verify"]
