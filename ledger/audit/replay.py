"""Point-in-time replay and the live-versus-replay check, straight from the event log."""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path

from ledger.application import Ledger
from projections import ReadModel
from projections.comparison import differences, table_rows


def replay(led: Ledger, until: datetime, out: str | Path, *, page_size: int = 2000) -> int:
    """Build the read models as they stood at `until` into the SQLite file `out` (replaced if
    it exists), independent of the live read models; return how many events it holds."""
    target = Path(out)
    for leftover in (target, Path(f"{target}-wal"), Path(f"{target}-shm")):
        leftover.unlink(missing_ok=True)
    model = ReadModel(f"sqlite:///{target}", source=led, page_size=page_size)
    try:
        return model.catch_up(until=until)
    finally:
        model.close()


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
