"""Reports stamp their evidence: the verified chain head and the signed digest checked against
it (or exactly why none was), the same in CSV comment lines, the JSON fields, the HTML
Evidence section and the Python API's DataFrame attrs. Logs and digest chains are tampered
with directly in the database, as someone without the private key could."""

from __future__ import annotations

import io
import json
import os
from csv import reader as csvreader
from html import escape
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from ledger import Ledger
from ledger.audit import Audit, NotVerified, signing
from ledger.audit.evidence import csv_comment
from ledger.errors import ValidationError
from ledger.storage import chain
from tests.conftest import ADMIN
from tests.helpers import cli, one_line
from tests.test_audit import events_table, raw, state_at
from tests.test_signed_digests import history, keys, sign, sign_result, signed_history, verify

__all__ = ["keys"]  # the fixture, shared with the signed-digest tests

FORMATS = ("csv", "json", "html")


def report(led: Ledger, *extra: str, fmt: str = "csv", code: int = 0) -> Result:
    return cli("--db", led.url, "audit", "report", "privileged", "--format", fmt, *extra, code=code)


def stamp(result: Result, fmt: str) -> list[str]:
    """The evidence lines a report carries, read back from its format."""
    if fmt == "csv":
        lines = result.stdout.splitlines()
        comments = [line for line in lines if line.startswith("# ")]
        assert lines[: len(comments)] == comments  # all at the top, before the header
        assert lines[len(comments)] == "role,user_id,email,account,since"
        return [line[2:] for line in comments]
    if fmt == "json":
        data = json.loads(result.stdout)
        block = [data["warning"]] if "warning" in data else []
        return [*block, *_head_line(data["verified"]), data["signed_digest"]["note"]]
    page = result.stdout
    section = page[page.index('<section id="evidence"') : page.index("</section>")]
    return [item.split("</li>")[0] for item in section.split("<li>")[1:]]


def shown(lines: list[str], fmt: str) -> list[str]:
    return [escape(line) for line in lines] if fmt == "html" else lines


def _head_line(verified: dict[str, Any] | None) -> list[str]:
    if verified is None:
        return []  # the JSON says "not verified" with the null and the warning
    return [
        f"integrity chain verified: {verified['events']} events (the whole log), head position "
        f"{verified['position']}, hash {verified['hash']}"
    ]


def head(led: Ledger) -> tuple[int, str]:
    row = led.side.select_one("SELECT position, hash FROM ledger_chain ORDER BY position DESC", ())
    assert row is not None
    return int(row["position"]), str(row["hash"])


def chain_line(led: Ledger) -> str:
    position, link = head(led)
    return (
        f"integrity chain verified: {position} events (the whole log), head position "
        f"{position}, hash {link}"
    )


def described(digest: dict[str, Any]) -> str:
    return (
        f"signed digest #{digest['number']} (position {digest['position']}, time "
        f"{digest['time']}, key {digest['key_id']})"
    )


def rewrite_with_fresh_links(led: Ledger, after: int, until: int) -> None:
    """Rename the role defined between positions `after` and `until` and recompute every link
    from there on: the chain verifies, and the event still decodes."""
    table, column = events_table(led)
    position = next(p for p in range(after + 1, until + 1) if b"role-" in state_at(led, p))
    forged = state_at(led, position).replace(b"role-", b"rolf-")
    raw(led, f"UPDATE {table} SET state = ? WHERE {column} = ?", forged, position)
    before = led.side.select_one(
        "SELECT hash FROM ledger_chain WHERE position = ?", (position - 1,)
    )
    assert before is not None
    notifications = led.recorder.select_notifications(start=position, limit=10_000)
    for at, link in chain.links(before["hash"], [n.id for n in notifications], notifications):
        raw(led, "UPDATE ledger_chain SET hash = ? WHERE position = ?", link, at)


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_intact_signed_log_checked_with_the_key_names_the_digest(
    led: Ledger, keys: tuple[Path, Path], fmt: str
) -> None:
    private, public = keys
    digests = signed_history(led, private)  # three digests, then events after the last
    last = digests[-1]
    after = head(led)[0] - int(str(last["position"]))
    assert after > 0
    result = report(led, "--public-key", str(public), fmt=fmt)
    expected = [
        chain_line(led),
        f"checked against {described(last)}, the last of 3 signed digests, all verified with "
        f"the public key given ({last['key_id']}); the {after} events after its position are "
        "covered by the chain only",
    ]
    assert stamp(result, fmt) == shown(expected, fmt)
    if fmt == "json":
        data = json.loads(result.stdout)
        position, link = head(led)
        assert data["verified"] == {"position": position, "hash": link, "events": position}
        assert data["signed_digest"] == {
            "status": "verified",
            "number": 3,
            "position": last["position"],
            "hash": last["hash"],
            "time": last["time"],
            "key_id": last["key_id"],
            "digests_checked": 3,
            "note": expected[1],
        }
        assert "warning" not in data
    if fmt == "html":
        assert 'data-signed-digest="verified"' in result.stdout
        assert "NOT VERIFIED" not in result.stdout


def test_a_digest_of_the_head_covers_the_whole_log(led: Ledger, keys: tuple[Path, Path]) -> None:
    private, public = keys
    history(led)
    digest = sign(led, private)
    [_, line] = stamp(report(led, "--public-key", str(public)), "csv")
    assert line.endswith(f"({digest['key_id']}); it covers the whole log")


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_log_without_signed_digests_says_so(led: Ledger, fmt: str) -> None:
    history(led)
    result = report(led, fmt=fmt)
    expected = [
        chain_line(led),
        "no signed digest is stored: the head is checked against the chain's own links only "
        "(a log rewritten with fresh links would not be caught)",
    ]
    assert stamp(result, fmt) == shown(expected, fmt)
    if fmt == "json":
        signed = json.loads(result.stdout)["signed_digest"]
        assert signed["status"] == "none stored"
        assert [signed[k] for k in ("number", "position", "hash", "time", "key_id")] == [None] * 5


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_signed_log_without_the_public_key_is_stamped_not_checked(
    led: Ledger, keys: tuple[Path, Path], fmt: str
) -> None:
    private, _ = keys
    last = signed_history(led, private)[-1]
    result = report(led, fmt=fmt)
    expected = [
        chain_line(led),
        f"{described(last)} is stored but NOT CHECKED: no public key was given "
        "(--public-key), so its signature, and the log against it, were not verified",
    ]
    assert stamp(result, fmt) == shown(expected, fmt)
    if fmt == "json":
        signed = json.loads(result.stdout)["signed_digest"]
        assert (signed["status"], signed["number"], signed["digests_checked"]) == (
            "not checked",
            3,
            None,
        )


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_log_rewritten_with_fresh_links_is_refused_with_the_key(
    led: Ledger, keys: tuple[Path, Path], fmt: str
) -> None:
    private, public = keys
    digests = signed_history(led, private)
    first, second = (int(str(d["position"])) for d in digests[:2])
    rewrite_with_fresh_links(led, first, second)
    problem = (
        f"the log at position {digests[1]['position']} is not what signed digest #2 (position "
        f"{digests[1]['position']}, time {digests[1]['time']}) signed: history rewritten"
    )
    refused = report(led, "--public-key", str(public), fmt=fmt, code=1)
    line = one_line(refused)
    assert "the signed digests do not verify" in line and problem in line
    assert "verify --public-key" in line and refused.stdout == ""
    marked = report(led, "--public-key", str(public), "--unverified", fmt=fmt)
    lines = stamp(marked, fmt)
    assert lines[0].startswith(escape(f"NOT VERIFIED: signed digests: {problem}"))
    assert lines[-1].startswith(escape(f"signed digests NOT VERIFIED: {problem}"))
    if fmt == "json":
        data = json.loads(marked.stdout)
        assert data["verified"] is not None  # the chain itself verifies: the links are fresh
        assert data["signed_digest"]["status"] == "failed"
        assert data["signed_digest"]["number"] is None  # no digest was verified
    if fmt == "html":
        assert 'class="not-verified">NOT VERIFIED: signed digests:' in marked.stdout
    # without the key nothing can catch it, and the stamp says the digest was not checked
    unchecked = stamp(report(led, fmt=fmt), fmt)
    assert "NOT CHECKED" in unchecked[-1] and not unchecked[0].startswith("NOT VERIFIED")


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_broken_chain_is_refused_and_marked_with_or_without_the_key(
    led: Ledger, keys: tuple[Path, Path], fmt: str
) -> None:
    private, public = keys
    signed_history(led, private)
    raw(led, "UPDATE ledger_chain SET hash = ? WHERE position = 3", "f" * 64)
    for extra in ((), ("--public-key", str(public))):
        line = one_line(report(led, *extra, fmt=fmt, code=1))
        assert "the integrity chain does not verify (BROKEN at position 3" in line
        lines = stamp(report(led, *extra, "--unverified", fmt=fmt), fmt)
        assert lines[0].startswith("NOT VERIFIED: BROKEN at position 3")
        if fmt != "json":
            assert lines[1].startswith("integrity chain NOT VERIFIED: BROKEN at position 3")
        if extra:
            assert lines[-1].startswith("signed digests NOT VERIFIED: the integrity chain:")


def test_the_key_with_no_stored_digest_is_refused(led: Ledger, keys: tuple[Path, Path]) -> None:
    private, public = keys
    signed_history(led, private)
    raw(led, "DELETE FROM ledger_digests")  # none made, or all deleted: the same to a reader
    line = one_line(report(led, "--public-key", str(public), code=1))
    assert "no signed digests are stored" in line
    data = json.loads(report(led, "--public-key", str(public), "--unverified", fmt="json").stdout)
    assert data["warning"].startswith("NOT VERIFIED: signed digests: no signed digests are stored")
    assert data["signed_digest"]["status"] == "failed"


def test_the_wrong_key_and_a_forged_digest_are_named(
    led: Ledger, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    private, public = keys
    signed_history(led, private)
    other = tmp_path / "other"
    cli("audit", "keygen", "--out", str(other))
    line = one_line(report(led, "--public-key", f"{other}.pub", code=1))
    assert "signed digest #1" in line and "not the public key given" in line
    raw(led, "UPDATE ledger_digests SET position = 1 WHERE number = 2")
    line = one_line(report(led, "--public-key", str(public), code=1))
    assert "signed digest #2 (position 1" in line and "forged or altered" in line


def test_control_characters_in_a_stored_digest_stay_inside_the_stamp(
    led: Ledger, keys: tuple[Path, Path]
) -> None:
    """A digest row edited by hand is malformed: refused by name, and with --unverified shown
    escaped inside the NOT VERIFIED stamp, adding no CSV rows or HTML."""
    private, public = keys
    signed_history(led, private)
    forged = "2026\nsuperuser,x,evil@x.org,Acme,2026\r<script>alert(1)</script>\x1b[2J"
    raw(led, "UPDATE ledger_digests SET time = ?, key_id = ? WHERE number = 3", forged, "k\n#")
    line = one_line(report(led, code=1))
    assert "signed digest row 3 is malformed: time '2026\\nsuperuser,x,evil@x" in line
    csv = report(led, "--unverified").stdout
    lines = csv.rstrip("\n").splitlines()
    assert lines[3] == "role,user_id,email,account,since" and len(lines) == 4
    assert lines[0].startswith("# NOT VERIFIED: signed digests: signed digest row 3 is malformed")
    assert "\x1b" not in csv and "\\nsuperuser" in lines[0]
    page = report(led, "--unverified", fmt="html").stdout
    assert "<script>" not in page and "\x1b" not in page
    signed = json.loads(report(led, "--unverified", fmt="json").stdout)["signed_digest"]
    assert signed["status"] == "failed" and "\n" not in signed["note"]
    line = one_line(report(led, "--public-key", str(public), code=1))
    assert "signed digest row 3 is malformed" in line


def _formula_cells(text: str) -> list[str]:
    """The cells of a CSV a spreadsheet would run as formulas, split at , and at ;."""
    found = []
    for delimiter in ",;":
        for row in csvreader(io.StringIO(text), delimiter=delimiter):
            found += [cell for cell in row if cell.lstrip().startswith(("=", "+", "-", "@"))]
    return found


INJECTION = '2026-11-30T13:30:43+00:00,=cmd|\' /C calc\'!A0;@SUM(1),"=HYPERLINK(""x"")"'
MALFORMED = [
    ("time", INJECTION, "time '2026-11-30T13:30:43+00:00,=cmd|"),
    ("time", "2026-11-30T13:30:43", "time '2026-11-30T13:30:43' is not an ISO 8601"),
    ("key_id", "=1+1", "key_id '=1+1' is not 16 lowercase hex digits"),
    ("signature", "+" + "0" * 127, "signature '+000"),
    ("previous", "-1,@x", "previous '-1,@x' is not 128 lowercase hex digits"),
    ("hash", "0" * 63 + "G", "hash '" + "0" * 30),
    ("position", -1, "position -1 is not an integer from 0"),
]
SQLITE_ONLY = [  # SQLite keeps text (and reals) in a BIGINT column
    ("position", "=2+2", "position '=2+2' is not an integer from 0"),
    ("position", 2.5, "position 2.5 is not an integer from 0"),
    ("number", "zz", "signed digest row 'zz' is malformed: number 'zz' is not an integer"),
]


@pytest.mark.parametrize(("column", "value", "named"), MALFORMED)
def test_a_malformed_digest_row_is_named_everywhere_never_a_traceback_or_a_formula(
    led: Ledger, keys: tuple[Path, Path], column: str, value: object, named: str
) -> None:
    """A digest row's fields are parsed strictly: a malformed one is a failed check named by
    row, in reports (with or without the key: refused, or stamped NOT VERIFIED), in `verify
    --public-key` and in signing; a stamp line never carries a formula cell."""
    check_malformed_row(led, keys, column, value, named)


@pytest.mark.parametrize("url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("column", "value", "named"), SQLITE_ONLY)
def test_text_in_an_integer_column_of_a_digest_row_is_named_too(
    led: Ledger, keys: tuple[Path, Path], column: str, value: object, named: str
) -> None:
    """SQLite keeps text and reals in a BIGINT column (PostgreSQL refuses them on write)."""
    check_malformed_row(led, keys, column, value, named)


def check_malformed_row(
    led: Ledger, keys: tuple[Path, Path], column: str, value: object, named: str
) -> None:
    private, public = keys
    signed_history(led, private)
    if column == "number":
        raw(
            led,
            "INSERT INTO ledger_digests SELECT ?, position, hash, time, previous, key_id, "
            "signature FROM ledger_digests WHERE number = 3",
            value,
        )
    else:
        raw(led, f"UPDATE ledger_digests SET {column} = ? WHERE number = 3", value)
    row = "'zz'" if column == "number" else "3"
    for key in ((), ("--public-key", str(public))):
        line = one_line(report(led, *key, code=1))
        assert f"signed digest row {row} is malformed" in line and named in line, line
        assert "Traceback" not in line
        for fmt in FORMATS:
            marked = stamp(report(led, *key, "--unverified", fmt=fmt), fmt)
            assert marked[0].startswith("NOT VERIFIED: signed digests: signed digest row ")
        csv = report(led, *key, "--unverified").stdout
        assert _formula_cells(csv) == [] and named.split()[0] in csv
    verified = verify(led, public, code=1)
    assert f"signed digest row {row} is malformed" in verified
    refused = one_line(sign_result(led, private, code=1))
    assert f"not signing: signed digest row {row} is malformed" in refused
    with Audit(led.url) as audit:
        with pytest.raises(NotVerified, match="is malformed"):
            audit.report("privileged")
        frame = audit.report("privileged", unverified=True, public_key=public)
        assert frame.attrs["signed_digest"]["status"] == "failed"


def test_stamp_lines_of_the_evidence_keep_commas_but_no_formula_cell() -> None:
    assert csv_comment("a, b; c") == "# a, b; c"
    assert csv_comment('t 1,=cmd; @x,\t-1, "+2') == "# t 1,'=cmd; '@x,\t'-1, \"'+2"
    assert _formula_cells(csv_comment(INJECTION) + "\n") == []


def test_bad_public_keys_are_refused_with_one_line_and_nothing_written(
    led: Ledger, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    private, _ = keys
    signed_history(led, private)
    out = tmp_path / "report.csv"
    not_a_key = tmp_path / "not-a-key.pub"
    not_a_key.write_text("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    huge = tmp_path / "huge.pub"
    huge.write_bytes(b"x" * 100_000)
    fifo = tmp_path / "fifo.pub"
    os.mkfifo(fifo)  # would wait forever for a writer
    for path, problem in (
        (fifo, "not a regular file"),
        (tmp_path / "missing.pub", "cannot read public key"),
        (not_a_key, "not an Ed25519 public key"),
        (huge, "more than 16384 bytes"),
        (private, "not an Ed25519 public key"),  # the private key given by mistake
    ):
        line = one_line(report(led, "--public-key", str(path), "--out", str(out), code=1))
        assert problem in line and str(path) in line
        assert "PRIVATE" not in line
        assert not out.exists()
    with Audit(led.url) as audit, pytest.raises(ValidationError, match="not an Ed25519"):
        audit.report("privileged", public_key=not_a_key)


def test_the_python_api_stamps_the_same_evidence(led: Ledger, keys: tuple[Path, Path]) -> None:
    private, public = keys
    last = signed_history(led, private)[-1]
    with Audit(led.url) as audit:
        frame = audit.report("privileged", public_key=public)
        key = signing.load_public_key(public)
        data = json.loads(audit.render(["privileged"], "json", public_key=key))
        unchecked = audit.report("privileged")
        raw(led, "UPDATE ledger_digests SET hash = ? WHERE number = 3", "0" * 64)
        with pytest.raises(NotVerified, match=r"signed digest #3.*forged or altered"):
            audit.report("privileged", public_key=str(public))
        marked = audit.report("privileged", public_key=public, unverified=True)
    assert frame.attrs["signed_digest"] == data["signed_digest"]
    assert frame.attrs["verified"] == data["verified"]
    assert frame.attrs["signed_digest"]["number"] == last["number"]
    assert frame.attrs["signed_digest"]["status"] == "verified"
    assert unchecked.attrs["signed_digest"]["status"] == "not checked"
    assert marked.attrs["signed_digest"]["status"] == "failed"
    assert marked.attrs["warning"].startswith("NOT VERIFIED: signed digests: signed digest #3")


def test_a_digest_signed_while_a_report_verifies_is_not_taken_for_truncation(
    led: Ledger, keys: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes at once: events recorded and a digest signed of them between the
    report's chain verification and its look at the digests. The report is stamped with the
    digest it could check, not refused as a log cut short."""
    private, public = keys
    last = signed_history(led, private)[-1]
    key = signing.load_private_key(private)
    original = Audit.verify

    def verify_then_others_write(self: Audit, digest: Any = None) -> Any:
        result = original(self, digest)
        history(led)  # another process's commands ...
        signing.sign(led, key)  # ... and the signer's next digest, of them
        return result

    monkeypatch.setattr(Audit, "verify", verify_then_others_write)
    with Audit(led.url) as audit:
        frame = audit.report("privileged", public_key=public)
    assert frame.attrs["signed_digest"]["status"] == "verified"
    assert frame.attrs["signed_digest"]["number"] == last["number"]
    assert "warning" not in frame.attrs


FORMULAS = ("=cmd|' /C calc'!A0", "@SUM(1);-2", "+1,=2", '"=HYPERLINK(""x"")"', "-x\t=y")


def test_report_text_cells_never_run_as_formulas_and_json_keeps_them(led: Ledger) -> None:
    """A name a user chose reaches the privileged report: in CSV no cell (split at , or ;)
    starts a formula; JSON keeps the text exactly."""
    led.define_role("admin", actor=ADMIN)
    for n, name in enumerate(FORMULAS):
        account = led.create_account(name, actor=ADMIN)
        user = led.create_user(f"f{n}@acme.org", account_id=account, actor=ADMIN)
        led.grant_role(user, "admin", actor=ADMIN)
    csv = report(led).stdout
    assert _formula_cells(csv) == []
    assert "'=cmd|' /C calc'!A0" in csv
    accounts = {
        row["account"]
        for row in json.loads(report(led, fmt="json").stdout)["reports"]["privileged"]
    }
    assert accounts == set(FORMULAS)
