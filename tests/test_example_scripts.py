"""The example admin scripts in scripts/examples run as documented."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ledger import Ledger
from tests.conftest import ADMIN

SCRIPT = Path(__file__).parent.parent / "scripts" / "examples" / "deactivate_leavers.py"


def test_deactivate_leavers_runs_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    led = Ledger(url)
    acme = led.create_account("Acme", actor=ADMIN)
    ann = led.create_user("ann@acme.org", account_id=acme, actor=ADMIN)
    led.create_user("bob@acme.org", account_id=acme, actor=ADMIN)
    led.close()
    leavers = tmp_path / "leavers.csv"
    leavers.write_text("email,reason\nAnn@acme.org,Left in May\nnobody@acme.org,?\n")

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(SCRIPT), str(leavers), "--db", url],
            capture_output=True,
            text=True,
            timeout=60,
        )

    first = run()
    assert first.returncode == 1  # one row names nobody
    assert "deactivated 1, unchanged 0, failed 1" in first.stdout
    assert "not found: 'nobody@acme.org'" in first.stderr
    second = run()
    assert "deactivated 0, unchanged 1, failed 1" in second.stdout
    led = Ledger(url)
    try:
        user = led.repository.get(ann)
        assert not user.active
    finally:
        led.close()
