"""The evidence a report stamps on itself: the integrity-chain head it was verified up to, and
the signed digest it was checked against, or exactly why it was not. Made once per report
run, from the same checks `ledger audit verify [--public-key]` runs, and written the same way
into every format (CSV comment lines, a JSON field, an HTML section), so a new report gets it
without asking."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final

from ledger.audit.integrity import Verification
from ledger.audit.signing import SignedDigest, SignedVerification
from ledger.storage import chain

# Stored digest fields are shown as stored, and the table can be edited by anyone with the
# database: their control characters (a newline would start a CSV row) are escaped.
_UNPRINTABLE: Final = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _plain(text: str) -> str:
    return _UNPRINTABLE.sub(lambda found: found.group().encode("unicode_escape").decode(), text)


@dataclass(frozen=True)
class Evidence:
    """`chain`: the integrity chain as verified for this report (the whole log, every time);
    `signed`: what `verify_signed` found, or None when no public key was given; `stored`: the
    newest signed digest in the database (unchecked unless `signed` is)."""

    chain: Verification
    signed: SignedVerification | None
    stored: SignedDigest | None
    malformed: str | None = None
    """Why the newest stored digest row could not be read (then `stored` is None): a failed
    check, with a public key or without."""

    @property
    def ok(self) -> bool:
        return self.chain.ok and self.malformed is None and (self.signed is None or self.signed.ok)

    def problem(self) -> str | None:
        """Why the report is NOT VERIFIED: the chain's summary first, else the signatures'."""
        if not self.chain.ok:
            return self.chain.summary()
        if self._digest_problem() is not None:
            return f"signed digests: {self._digest_problem()}"
        return None

    def _digest_problem(self) -> str | None:
        if self.malformed is not None:
            return self.malformed
        if self.signed is not None and not self.signed.ok:
            return self.signed.problem
        return None

    def block(self) -> dict[str, Any]:
        """The JSON fields: `verified` (the head verified, or None), `signed_digest` (always
        the same keys; `status` one of verified, not checked, none stored, failed) and, when
        not verified, a `warning` starting NOT VERIFIED."""
        fields: dict[str, Any] = {"verified": self._head(), "signed_digest": self._digest()}
        problem = self.problem()
        if problem is not None:
            fields["warning"] = _plain(f"NOT VERIFIED: {problem}")
        return fields

    def lines(self) -> list[str]:
        """The same as sentences, one a line, no control characters: CSV comments, HTML."""
        problem = self.problem()
        shown = [] if problem is None else [_plain(f"NOT VERIFIED: {problem}")]
        return [*shown, self._chain_line(), self._digest_line()]

    def _head(self) -> dict[str, Any] | None:
        if not self.chain.ok:
            return None
        head = self.chain.head
        return {
            "position": 0 if head is None else head.position,
            "hash": chain.GENESIS if head is None else head.hash,
            "events": self.chain.events,
        }

    def _status(self) -> str:
        if self.malformed is not None:
            return "failed"
        if self.signed is not None:
            return "verified" if self.signed.ok else "failed"
        return "none stored" if self.stored is None else "not checked"

    def _shown_digest(self) -> SignedDigest | None:
        """The digest the stamp names: with a key, the last one verified (none on failure);
        without, the newest stored (unchecked)."""
        if self.malformed is not None:
            return None
        if self.signed is None:
            return self.stored
        return self.signed.last if self.signed.ok else None

    def _digest(self) -> dict[str, Any]:
        digest = self._shown_digest()
        return {
            "status": self._status(),
            "number": None if digest is None else digest.number,
            "position": None if digest is None else digest.position,
            "hash": None if digest is None else _plain(digest.hash),
            "time": None if digest is None else _plain(digest.time),
            "key_id": None if digest is None else _plain(digest.key_id),
            "digests_checked": None if self.signed is None else self.signed.digests,
            "note": self._digest_line(),
        }

    def _chain_line(self) -> str:
        if not self.chain.ok:
            return _plain(f"integrity chain NOT VERIFIED: {self.chain.summary()}")
        head = self.chain.head
        if head is None:
            return "integrity chain verified: empty log, nothing to verify"
        return (
            f"integrity chain verified: {self.chain.events} events (the whole log), "
            f"head position {head.position}, hash {head.hash}"
        )

    def _digest_line(self) -> str:
        status = self._status()
        digest = self._shown_digest()
        named = "" if digest is None else _plain(_describe(digest))
        if status == "verified":
            assert digest is not None
            head = 0 if self.chain.head is None else self.chain.head.position
            after = head - digest.position
            assert self.signed is not None
            return (
                f"checked against {named}, the last of {self.signed.digests} signed digests, "
                f"all verified with the public key given ({digest.key_id}); "
                + (
                    f"the {after} events after its position are covered by the chain only"
                    if after
                    else "it covers the whole log"
                )
            )
        if status == "failed":
            return _plain(f"signed digests NOT VERIFIED: {self._digest_problem()}")
        if status == "none stored":
            return (
                "no signed digest is stored: the head is checked against the chain's own links "
                "only (a log rewritten with fresh links would not be caught)"
            )
        return (
            f"{named} is stored but NOT CHECKED: no public key was given (--public-key), so "
            "its signature, and the log against it, were not verified"
        )


def _describe(digest: SignedDigest) -> str:
    return (
        f"signed digest #{digest.number} (position {digest.position}, time {digest.time}, "
        f"key {digest.key_id})"
    )


# A spreadsheet splits a CSV line at , or ; (by locale) and runs a cell starting with = + - @
# as a formula: in a stamp line, such a cell gets a ' before it (shown as text, still readable).
# A line end splits too: a spreadsheet may take one inside a quoted cell for the row's end.
_FORMULA_CELL: Final = re.compile(r"""([,;\t\r\n][\s"]*)(?=[=+\-@])""")
# In JSON text: its strings, and in them (or right after the opening quote) a formula's start.
_JSON_STRING: Final = re.compile(r'"(?:[^"\\]|\\.)*"')
_JSON_FORMULA: Final = re.compile(r"""((?:^"|[,;\t])[\s"]*)([=+\-@])""")


def csv_comment(line: str) -> str:
    """A stamp line as a CSV comment line: `# ` and the line, no cell of it a formula."""
    return "# " + _FORMULA_CELL.sub(r"\1'", line)


def csv_cell(value: Any) -> Any:
    """A report's text cell with no part a spreadsheet would run as a formula: a ' before
    the cell, or before the part after a , ; or tab (a locale may split there), that starts
    with = + - @. Anything but text is left as it is."""
    if not isinstance(value, str):
        return value
    text = _FORMULA_CELL.sub(r"\1'", value)
    return "'" + text if text.lstrip(' \t\r\n"').startswith(("=", "+", "-", "@")) else text


def csv_json_cell(value: Any) -> str:
    """`value` as JSON for a CSV cell, with no part a spreadsheet would run as a formula and
    nothing added to its values: in its strings, an = + - @ that would start a part is
    written as its JSON escape (\\u003d for =), so the JSON reads back as the value recorded."""
    text = json.dumps(value, ensure_ascii=False)
    return _JSON_STRING.sub(lambda string: _JSON_FORMULA.sub(_escaped, string[0]), text)


def _escaped(found: re.Match[str]) -> str:
    return f"{found[1]}\\u{ord(found[2]):04x}"
