"""Signed digests: `ledger audit keygen`, `digest --sign`, `verify --public-key`. The log and
the digest chain are tampered with directly in the database, as someone without the private
key could; each tampering is named."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from click.testing import Result

from ledger import Ledger
from ledger.storage import chain
from tests.conftest import ADMIN
from tests.helpers import cli, one_line
from tests.test_audit import events_table, raw, state_at


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    private = tmp_path / "digest-key"
    result = cli("audit", "keygen", "--out", str(private))
    assert "PRIVATE" not in result.stdout + result.stderr
    return private, tmp_path / "digest-key.pub"


def history(led: Ledger, people: int = 3) -> None:
    acme = led.account_id_for_name("Acme") or led.create_account("Acme", actor=ADMIN)
    led.define_role(f"role-{led.recorder.max_notification_id()}", actor=ADMIN)
    for i in range(people):
        user = led.create_user(
            f"u{led.recorder.max_notification_id()}-{i}@acme.org", account_id=acme, actor=ADMIN
        )
        led.record_login(user, ip="192.0.2.1")


def sign_result(led: Ledger, private: Path, code: int = 0) -> Result:
    return cli("--db", led.url, "audit", "digest", "--sign", str(private), code=code)


def sign(led: Ledger, private: Path, code: int = 0) -> dict[str, object]:
    result = sign_result(led, private, code)
    return {} if code else dict(json.loads(result.stdout))


def verify(led: Ledger, public: Path, code: int = 0) -> str:
    result = cli("--db", led.url, "audit", "verify", "--public-key", str(public), code=code)
    return result.stdout.strip()


def signed_history(led: Ledger, private: Path) -> list[dict[str, object]]:
    """Three signed digests over a growing log, and events after the last."""
    digests = []
    for _ in range(3):
        history(led)
        digests.append(sign(led, private))
    history(led, people=1)
    return digests


def test_keygen_writes_a_private_key_only_its_owner_reads(keys: tuple[Path, Path]) -> None:
    private, public = keys
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert private.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert public.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    again = cli("audit", "keygen", "--out", str(private), code=1)
    assert "exists; a key is never overwritten" in one_line(again)


def test_a_signed_history_verifies_and_names_what_signatures_cover(
    led: Ledger, keys: tuple[Path, Path]
) -> None:
    private, public = keys
    digests = signed_history(led, private)
    assert [d["number"] for d in digests] == [1, 2, 3]
    assert digests[1]["previous"] == digests[0]["signature"]
    head = led.recorder.max_notification_id()
    summary = verify(led, public)
    assert summary.startswith(f"intact: {head} events verified against 3 signed digests")
    assert f"the {head - int(str(digests[2]['position']))} events after it" in summary


def test_a_tail_rewritten_with_fresh_links_is_caught_by_the_signatures(
    led: Ledger, keys: tuple[Path, Path]
) -> None:
    private, public = keys
    digests = signed_history(led, private)
    position = int(str(digests[1]["position"])) - 1
    table, column = events_table(led)
    forged = state_at(led, position).replace(b"192.0.2.1", b"192.0.2.9")
    if forged == state_at(led, position):  # sealed personal data: change any byte
        forged = state_at(led, position)[:-2] + b" }"
    raw(led, f"UPDATE {table} SET state = ? WHERE {column} = ?", forged, position)
    previous = led.side.select_one(
        "SELECT hash FROM ledger_chain WHERE position = ?", (position - 1,)
    )
    assert previous is not None
    notifications = led.recorder.select_notifications(start=position, limit=10_000)
    for at, link in chain.links(previous["hash"], [n.id for n in notifications], notifications):
        raw(led, "UPDATE ledger_chain SET hash = ? WHERE position = ?", link, at)
    assert cli("--db", led.url, "audit", "verify").stdout.startswith("intact")  # fresh links
    summary = verify(led, public, code=1)
    assert f"the log at position {digests[1]['position']} is not what signed digest #2" in summary
    assert "history rewritten" in summary


def test_a_truncated_log_is_caught_by_the_signatures(led: Ledger, keys: tuple[Path, Path]) -> None:
    private, public = keys
    digests = signed_history(led, private)
    cut = int(str(digests[2]["position"])) - 1
    table, column = events_table(led)
    raw(led, f"DELETE FROM {table} WHERE {column} > ?", cut)
    raw(led, "DELETE FROM ledger_chain WHERE position > ?", cut)
    assert cli("--db", led.url, "audit", "verify").stdout.startswith("intact")
    summary = verify(led, public, code=1)
    assert f"the log ends at position {cut}, before signed digest #3" in summary
    assert "truncated" in summary


def test_a_forged_digest_is_named(led: Ledger, keys: tuple[Path, Path]) -> None:
    private, public = keys
    signed_history(led, private)
    head = led.side.select_one("SELECT hash FROM ledger_chain ORDER BY position DESC LIMIT 1", ())
    assert head is not None
    raw(led, "UPDATE ledger_digests SET hash = ? WHERE number = 2", head["hash"])
    assert "signed digest #2" in verify(led, public, code=1)
    assert "forged or altered" in verify(led, public, code=1)
    refused = cli("--db", led.url, "audit", "digest", "--sign", str(private), code=1)
    assert "not signing: signed digest #2" in one_line(refused)  # never signs onto a forgery


def test_signing_refuses_to_extend_a_forged_last_digest(
    led: Ledger, keys: tuple[Path, Path]
) -> None:
    private, _ = keys
    signed_history(led, private)
    raw(led, "UPDATE ledger_digests SET time = ? WHERE number = 3", "2099-01-01T00:00:00+00:00")
    refused = cli("--db", led.url, "audit", "digest", "--sign", str(private), code=1)
    assert "not signing: signed digest #3" in one_line(refused)
    assert "forged or altered" in one_line(refused)
    row = led.side.select_one("SELECT count(*) AS n FROM ledger_digests", ())
    assert row is not None and row["n"] == 3


def test_a_removed_digest_is_named(led: Ledger, keys: tuple[Path, Path]) -> None:
    private, public = keys
    signed_history(led, private)
    raw(led, "DELETE FROM ledger_digests WHERE number = 2")
    assert "signed digest #2 is missing (the next stored is #3): removed" in verify(
        led, public, code=1
    )
    raw(led, "UPDATE ledger_digests SET number = 2 WHERE number = 3")  # renumbered: forged
    assert "signed digest #2" in verify(led, public, code=1)


def test_reordered_digests_are_named(led: Ledger, keys: tuple[Path, Path]) -> None:
    private, public = keys
    signed_history(led, private)
    raw(led, "UPDATE ledger_digests SET number = 99 WHERE number = 2")
    raw(led, "UPDATE ledger_digests SET number = 2 WHERE number = 3")
    raw(led, "UPDATE ledger_digests SET number = 3 WHERE number = 99")
    assert "signed digest #2" in verify(led, public, code=1)


def test_the_wrong_public_key_is_named(
    led: Ledger, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    private, _ = keys
    other = tmp_path / "other"
    cli("audit", "keygen", "--out", str(other))
    signed_history(led, private)
    summary = verify(led, Path(f"{other}.pub"), code=1)
    assert "signed digest #1" in summary and "not the public key given" in summary
    assert "the wrong key" in summary
    refused = cli("--db", led.url, "audit", "digest", "--sign", str(other), code=1)
    assert "sign with the key the digest chain was made with" in one_line(refused)


def test_no_stored_digests_do_not_verify(led: Ledger, keys: tuple[Path, Path]) -> None:
    private, public = keys
    signed_history(led, private)
    raw(led, "DELETE FROM ledger_digests")
    assert "no signed digests are stored" in verify(led, public, code=1)


def test_signing_refuses_a_broken_chain(led: Ledger, keys: tuple[Path, Path]) -> None:
    private, _ = keys
    history(led)
    raw(led, "UPDATE ledger_chain SET hash = ? WHERE position = 3", "f" * 64)
    refused = cli("--db", led.url, "audit", "digest", "--sign", str(private), code=1)
    assert "not signing: the integrity chain does not verify" in one_line(refused)
    assert "position 3" in one_line(refused)
    assert led.side.select_one("SELECT number FROM ledger_digests", ()) is None


def test_signing_an_empty_log_then_a_growing_one(led: Ledger, keys: tuple[Path, Path]) -> None:
    private, public = keys
    first = sign(led, private)
    assert (first["position"], first["hash"]) == (0, chain.GENESIS)
    assert sign(led, private)["number"] == 2
    history(led)
    sign(led, private)
    assert verify(led, public).startswith("intact")


def test_every_keeps_signing(led: Ledger, keys: tuple[Path, Path]) -> None:
    private, public = keys
    history(led)
    result = cli(
        "--db", led.url, "audit", "digest", "--sign", str(private), "--every", "1s", "--count", "2"
    )
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["number"] for line in lines] == [1, 2]
    assert lines[1]["previous"] == lines[0]["signature"]
    assert lines[0]["time"] < lines[1]["time"]
    assert verify(led, public).startswith("intact")


@pytest.mark.parametrize("every", ["0h", "1x", "-1h", "1 h", "h", "367d", "1h\n"])
def test_a_bad_interval_is_refused(led: Ledger, keys: tuple[Path, Path], every: str) -> None:
    private, _ = keys
    refused = cli(
        "--db", led.url, "audit", "digest", "--sign", str(private), "--every", every, code=1
    )
    assert f"invalid every {every!r}" in one_line(refused)
    assert led.side.select_one("SELECT number FROM ledger_digests", ()) is None


def test_key_files_that_are_not_keys_are_refused(
    led: Ledger, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    private, public = keys
    history(led)
    readable = tmp_path / "readable"
    readable.write_bytes(private.read_bytes())
    readable.chmod(0o644)
    refused = cli("--db", led.url, "audit", "digest", "--sign", str(readable), code=1)
    assert f"invalid key {str(readable)!r}: a private key others may read (mode 0644)" in one_line(
        refused
    )
    for wrong, option in ((public, "--sign"), (private, "--public-key")):
        if option == "--sign":
            wrong_copy = tmp_path / "pub-as-private"
            wrong_copy.write_bytes(wrong.read_bytes())
            wrong_copy.chmod(0o600)
            refused = cli("--db", led.url, "audit", "digest", option, str(wrong_copy), code=1)
            assert "not an Ed25519 private key" in one_line(refused)
        else:
            refused = cli("--db", led.url, "audit", "verify", option, str(wrong), code=1)
            assert "not an Ed25519 public key" in one_line(refused)
    huge = tmp_path / "huge"
    huge.write_bytes(b"\x00" * 100_000)
    huge.chmod(0o600)
    refused = cli("--db", led.url, "audit", "digest", "--sign", str(huge), code=1)
    assert "more than 16384 bytes" in one_line(refused)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # would wait forever for a writer
    for option in ("--public-key", "--sign"):
        command = "verify" if option == "--public-key" else "digest"
        refused = cli("--db", led.url, "audit", command, option, str(fifo), code=1)
        assert f"{str(fifo)!r}: not a regular file" in one_line(refused)
    missing = cli("--db", led.url, "audit", "verify", "--public-key", str(tmp_path / "no"), code=1)
    assert "cannot read public key" in one_line(missing)
    assert led.side.select_one("SELECT number FROM ledger_digests", ()) is None
