"""Point-in-time replay and the live-versus-replay check, straight from the event log."""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

from ledger.application import Ledger
from ledger.audit import integrity
from ledger.errors import ValidationError
from ledger.storage import replay_file, sqlite_files
from ledger.validation import shown
from projections import ReadModel
from projections.comparison import differences, table_rows


def replay(led: Ledger, until: datetime, out: str | Path, *, page_size: int = 2000) -> int:
    """Build the read models as they stood at `until` into the SQLite file `out`, independent
    of the live read models, and mark it as a replay; return how many events it holds.

    `out` must be a new file or a replay made earlier (which is replaced); anything else is
    refused untouched. The file is built beside `out` under another name and moved into place
    when complete, so a failed replay leaves whatever was there."""
    target = Path(out)
    _check_target(target)
    head = integrity.digest(led)
    scratch = target.with_name(f".{target.name}.{uuid4().hex}.partial")
    try:
        model = ReadModel(f"sqlite:///{scratch}", source=led, page_size=page_size)
        try:
            count = model.catch_up(until=until, stop=head.position)
        finally:
            model.close()
        mark = replay_file.ReplayMark(
            until=until.isoformat(),
            position=head.position,
            hash=head.hash,
            events=count,
            made_at=datetime.now(UTC).isoformat(),
        )
        replay_file.write(scratch, mark)
        for companion in _companions(target):  # a replay's own, checked above
            companion.unlink(missing_ok=True)
        scratch.replace(target)
    finally:
        for leftover in (scratch, *_companions(scratch)):
            leftover.unlink(missing_ok=True)
    return count


def _companions(path: Path) -> tuple[Path, Path]:
    """SQLite's write-ahead log and its index, beside the database file."""
    return Path(f"{path}-wal"), Path(f"{path}-shm")


def _check_target(target: Path) -> None:
    """Refuse an `out` that replay may not write: a folder, a file in a folder that does not
    exist or cannot be written, or an existing file that is not a replay (such as the ledger
    itself)."""
    try:
        target.exists()
    except OSError as error:  # a name the file system cannot hold (too long)
        raise ValidationError(f"invalid out {shown(str(target))}: {error.strerror}") from None
    if target.is_dir():
        raise ValidationError(f"invalid out {shown(str(target))}: it is a folder, not a file")
    if not target.parent.is_dir():
        raise ValidationError(
            f"invalid out {shown(str(target))}: the folder {shown(str(target.parent))} "
            "does not exist"
        )
    if not os.access(target.parent, os.W_OK | os.X_OK):
        raise ValidationError(
            f"invalid out {shown(str(target))}: the folder {shown(str(target.parent))} cannot be "
            "written (read-only, or no permission)"
        )
    companion_of = sqlite_files.database_of_companion(target)
    if companion_of is not None:
        raise ValidationError(
            f"invalid out {shown(str(target))}: it is named as a companion file of the database "
            f"{str(companion_of)!r}, which SQLite would read or delete: name another file"
        )
    present = [path for path in (target, *_companions(target)) if os.path.lexists(path)]
    if present and replay_file.read_file(target) is None:
        raise ValidationError(
            f"invalid out {shown(str(target))}: {shown(str(present[0]))} exists and is not a "
            "replay file made by `ledger audit replay`; it was left untouched: name a new file"
        )


def check(led: Ledger, live: ReadModel) -> tuple[int, list[str]]:
    """Replay the log up to the live read models' position into a scratch database and
    compare them table by table; return the position and the differences found."""
    position = live.position()
    with tempfile.TemporaryDirectory(prefix="ledger-check-") as folder:
        scratch = f"sqlite:///{Path(folder) / 'replay.db'}"  # sealed, as the live read models
        fresh = ReadModel(scratch, source=led, page_size=2000, sealed=live.sealed)
        try:
            fresh.catch_up(stop=position)
            found = differences(table_rows(live.engine), table_rows(fresh.engine))
        finally:
            fresh.close()
    return position, found
