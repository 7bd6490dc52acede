"""The HTML report is one self-contained page whose timeline chart renders in a real browser."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image

from ledger import Ledger
from ledger.audit import Audit
from ledger.audit.html import ROLE_COLOURS
from tests.conftest import ADMIN

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is required under CI (apt-get install chromium)")
        pytest.skip("chromium is not installed")
    return found


def test_the_timeline_chart_renders_offline(chromium: str, tmp_path: Path) -> None:
    moments = iter(T0 + timedelta(days=i) for i in range(100))
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    led = Ledger(url, clock=lambda: next(moments))
    for role in ("admin", "consultant"):
        led.define_role(role, actor=ADMIN)
    acme = led.create_account("Acme", actor=ADMIN)
    ann = led.create_user("ann@acme.org", account_id=acme, actor=ADMIN, roles=["admin"])
    bob = led.create_user("bob@acme.org", account_id=acme, actor=ADMIN, roles=["consultant"])
    led.revoke_role(ann, "admin", actor=ADMIN)
    led.deactivate_user(bob, actor=ADMIN)
    led.close()
    with Audit(url) as audit:
        page = audit.render(
            ["privileged", "role-changes"], "html", since=T0, until=T0 + timedelta(days=30)
        )
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing from elsewhere
    assert "<script" not in page
    report = tmp_path / "report.html"
    report.write_text(page, encoding="utf-8")

    profile = tmp_path / "profile"
    dom = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", report.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert dom.count('class="holding"') == 2  # ann's admin days, bob's consultant days
    screenshot = tmp_path / "report.png"
    subprocess.run(
        [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--window-size=1200,900",
            f"--screenshot={screenshot}",
            report.as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    pixels = Image.open(screenshot).convert("RGB")
    counts = {colour: count for count, colour in pixels.getcolors(maxcolors=1_000_000) or []}
    for role in ("admin", "consultant"):
        wanted = tuple(int(ROLE_COLOURS[role][i : i + 2], 16) for i in (1, 3, 5))
        # The legend's swatch is 12 x 12 pixels; a drawn bar adds hundreds more.
        assert counts.get(wanted, 0) > 3 * 144, f"no {role} bar drawn"
