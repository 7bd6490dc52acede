"""Signed digests: the integrity chain's head signed with an Ed25519 key and stored in the
database as a chain of digests (each signs the one before), so that a log rewritten with fresh
links, or cut short, is caught from the database alone, by whoever holds the public key. As in
CloudTrail's digest files, this holds as long as the private key was not on the machine that
was tampered with."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ledger.application import Ledger
from ledger.audit import integrity
from ledger.audit.integrity import Digest, NotVerified
from ledger.errors import Conflict, ValidationError
from ledger.storage import chain, digest_chain

KEY_FILE_LIMIT: Final = 16_384  # bytes; an Ed25519 PEM is about 120
PAGE: Final = 1000
DOMAIN: Final = b"account-ledger signed digest v1\n"  # a signature means this and nothing else
SIGNATURE_HEX: Final = 128  # an Ed25519 signature's 64 bytes, as hex


def key_id(public: Ed25519PublicKey) -> str:
    """A short name of a public key: the first 16 hex digits of SHA-256 over its raw bytes."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def keygen(private_path: Path) -> tuple[Path, str]:
    """Write a new Ed25519 private key to `private_path` (mode 0600; never an existing file)
    and its public key beside it, `.pub` appended; returns the public key's path and key id."""
    public_path = private_path.with_name(private_path.name + ".pub")
    for path in (private_path, public_path):
        if path.exists() or path.is_symlink():
            raise ValidationError(
                f"invalid out {str(path)!r}: it exists; a key is never overwritten"
            )
    private = Ed25519PrivateKey.generate()
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _write_new(private_path, private_pem, 0o600)
    try:
        _write_new(public_path, public_pem, 0o644)
    except ValidationError:
        private_path.unlink()
        raise
    return public_path, key_id(private.public_key())


def _write_new(path: Path, data: bytes, mode: int) -> None:
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except OSError as error:
        raise ValidationError(f"cannot write {str(path)!r}: {error.strerror}") from None
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
    os.chmod(path, mode)  # whatever the umask


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """The private key in `path`, refused when others may read the file (as ssh does)."""
    data = _read_key_file(path, "private")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ValidationError(
            f"invalid key {str(path)!r}: a private key others may read (mode {mode:04o}); "
            f"chmod 600 it"
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValidationError(
            f"invalid key {str(path)!r}: not an Ed25519 private key as `ledger audit keygen` "
            "writes it"
        )
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    data = _read_key_file(path, "public")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, Ed25519PublicKey):
        raise ValidationError(
            f"invalid public key {str(path)!r}: not an Ed25519 public key as `ledger audit "
            "keygen` writes it (the .pub file)"
        )
    return key


def _read_key_file(path: Path, kind: str) -> bytes:
    try:
        # opened without blocking, then checked: a FIFO or device would wait forever on read
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as error:
        raise ValidationError(f"cannot read {kind} key {str(path)!r}: {error.strerror}") from None
    with os.fdopen(descriptor, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            raise ValidationError(
                f"cannot read {kind} key {str(path)!r}: not a regular file (a key is a file)"
            )
        try:
            data = file.read(KEY_FILE_LIMIT + 1)
        except OSError as error:
            raise ValidationError(
                f"cannot read {kind} key {str(path)!r}: {error.strerror}"
            ) from None
    if len(data) > KEY_FILE_LIMIT:
        raise ValidationError(
            f"invalid {kind} key {str(path)!r}: more than {KEY_FILE_LIMIT} bytes, not a key"
        )
    return data


@dataclass(frozen=True)
class SignedDigest:
    """One link of the digest chain: the integrity chain's `hash` at `position`, at `time`,
    signed together with `number` and the `previous` digest's signature ("" for the first)."""

    number: int
    position: int
    hash: str
    time: str
    previous: str
    key_id: str
    signature: str

    def message(self) -> bytes:
        signed = {
            "number": self.number,
            "position": self.position,
            "hash": self.hash,
            "time": self.time,
            "previous": self.previous,
            "key_id": self.key_id,
        }
        return DOMAIN + json.dumps(signed, sort_keys=True, separators=(",", ":")).encode()

    def signed_by(self, public: Ed25519PublicKey) -> bool:
        try:
            public.verify(bytes.fromhex(self.signature), self.message())
        except (InvalidSignature, ValueError):
            return False
        return True

    def describe(self) -> str:
        return f"signed digest #{self.number} (position {self.position}, time {self.time})"

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def stored(led: Ledger, upto: int | None = None) -> Iterator[SignedDigest]:
    """Every stored signed digest (numbered up to `upto`, if given), in number order, read in
    pages."""
    after = -(2**62)
    while rows := led.side.select_all(digest_chain.SELECT_PAGE, (after, PAGE)):
        for row in rows:
            digest = _digest(row)
            if upto is not None and digest.number > upto:
                return
            yield digest
        after = int(rows[-1]["number"])


def last_stored(led: Ledger) -> SignedDigest | None:
    row = led.side.select_one(digest_chain.SELECT_LAST, ())
    return None if row is None else _digest(row)


class MalformedDigest(NotVerified):
    """A stored signed digest row that is not one `sign` writes (the table can be edited by
    anyone with the database; SQLite keeps text in its BIGINT columns)."""


_HEX: Final = re.compile(r"[0-9a-f]+")
_SHOWN_LIMIT: Final = 40  # characters of a malformed value named in a message


def _shown(value: object) -> str:
    text = repr(value)  # quoted, its control characters escaped
    return text if len(text) <= _SHOWN_LIMIT else text[:_SHOWN_LIMIT] + "..."


def _digest(row: dict[str, object]) -> SignedDigest:
    """The row, parsed strictly: MalformedDigest naming the row and its first bad field."""
    number = row["number"]

    def malformed(why: str) -> MalformedDigest:
        return MalformedDigest(f"signed digest row {_shown(number)} is malformed: {why}")

    def integer(name: str, least: int) -> int:
        value = row[name]
        if type(value) is not int or value < least:
            raise malformed(f"{name} {_shown(value)} is not an integer from {least}")
        return value

    def hex_text(name: str, length: int, empty: bool = False) -> str:
        value = row[name]
        if not isinstance(value, str) or not (
            (empty and value == "") or (len(value) == length and _HEX.fullmatch(value))
        ):
            raise malformed(f"{name} {_shown(value)} is not {length} lowercase hex digits")
        return value

    number_checked, position = integer("number", 1), integer("position", 0)
    time = row["time"]
    try:
        parsed = datetime.fromisoformat(time) if isinstance(time, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None or parsed.isoformat() != time:
        raise malformed(f"time {_shown(time)} is not an ISO 8601 time with its offset")
    return SignedDigest(
        number=number_checked,
        position=position,
        hash=hex_text("hash", 64),
        time=time,
        previous=hex_text("previous", SIGNATURE_HEX, empty=True),
        key_id=hex_text("key_id", 16),
        signature=hex_text("signature", SIGNATURE_HEX),
    )


def sign(
    led: Ledger, private: Ed25519PrivateKey, clock: Callable[[], datetime] | None = None
) -> SignedDigest:
    """Verify the chain (the whole log, and that it still extends the last signed digest),
    sign its head and store the signed digest. NotVerified when the chain does not verify or
    the last stored digest was not signed by this key: a signature is never added to a log
    or a digest chain already tampered with."""
    public = private.public_key()
    _check_own(led, public)
    last = last_stored(led)
    # the empty log (position 0) is extended by any log
    kept = None if last is None or last.position == 0 else Digest(last.position, last.hash)
    result = integrity.verify(led, kept)
    if not result.ok:
        raise NotVerified(f"not signing: the integrity chain does not verify ({result.summary()})")
    head = result.head or Digest(0, chain.GENESIS)
    time = (clock or (lambda: datetime.now(UTC)))().isoformat()
    unsigned = SignedDigest(
        number=1 if last is None else last.number + 1,
        position=head.position,
        hash=head.hash,
        time=time,
        previous="" if last is None else last.signature,
        key_id=key_id(public),
        signature="",
    )
    digest = SignedDigest(
        **{**asdict(unsigned), "signature": private.sign(unsigned.message()).hex()}
    )
    try:
        led.side.write_side([digest_chain.insert(**asdict(digest))])
    except Exception as error:
        if last_stored(led) != last:  # the primary key: another signer stored this number
            raise Conflict(
                f"another signed digest #{digest.number} was stored at the same time; run again"
            ) from error
        raise
    return digest


def _check_own(led: Ledger, public: Ed25519PublicKey) -> None:
    """Refuse to sign onto a digest chain this key cannot verify whole."""
    own, previous = key_id(public), None
    try:
        digests = list(stored(led))
    except MalformedDigest as error:
        raise NotVerified(f"not signing: {error}; see `ledger audit verify --public-key`") from None
    for digest in digests:
        problem = _chain_problem(digest, previous, public, own)
        if problem is not None:
            if digest.key_id != own:
                problem = (
                    f"{digest.describe()} names key {digest.key_id}, this key is {own}; sign "
                    "with the key the digest chain was made with"
                )
            raise NotVerified(f"not signing: {problem}; see `ledger audit verify --public-key`")
        previous = digest


@dataclass(frozen=True)
class SignedVerification:
    """What `verify_signed` found: the chain's own verification, and the signed digests."""

    ok: bool
    chain: integrity.Verification
    digests: int
    last: SignedDigest | None
    problem: str | None = None

    def summary(self) -> str:
        if not self.ok:
            return f"NOT VERIFIED: {self.problem}"
        assert self.last is not None
        head = 0 if self.chain.head is None else self.chain.head.position
        after = head - self.last.position
        tail = (
            f"; the {after} events after it are covered by the chain only, until the next "
            "signed digest"
            if after
            else ""
        )
        return (
            f"intact: {self.chain.events} events verified against {self.digests} signed "
            f"digests of key {self.last.key_id}, the last {self.last.describe()}{tail}"
        )


def verify_signed(
    led: Ledger,
    public: Ed25519PublicKey,
    verified: integrity.Verification | None = None,
    upto: int | None = None,
) -> SignedVerification:
    """Check every stored signed digest (signature, number, link to the one before) with the
    public key, then the log against the chain and against each digest: a log rewritten with
    fresh links, cut short, or a digest removed, reordered or forged is named. `verified`: the
    chain's verification when the caller has just made it (a report), not made again; then
    `upto` must be the number of the newest digest stored before that verification began (0:
    none), as the digests signed since may be of events it did not see."""
    if verified is not None and upto is None:
        raise ValueError("verify_signed(verified=...) needs upto=")
    own = key_id(public)
    count, previous = 0, None
    try:
        for digest in stored(led, upto):
            problem = _chain_problem(digest, previous, public, own)
            if problem is not None:
                return _failed(integrity.Verification(False, 0, None), count, previous, problem)
            count, previous = count + 1, digest
    except MalformedDigest as error:
        return _failed(integrity.Verification(False, 0, None), count, previous, str(error))
    if previous is None:
        problem = "no signed digests are stored (none made yet, or deleted): nothing to check"
        return _failed(integrity.Verification(False, 0, None), 0, None, problem)
    result = integrity.verify(led) if verified is None else verified
    if not result.ok:
        return _failed(result, count, previous, f"the integrity chain: {result.summary()}")
    try:
        problem = _log_problem(led, result, upto)
    except MalformedDigest as error:  # a row changed since it was read
        problem = str(error)
    if problem is not None:
        return _failed(result, count, previous, problem)
    return SignedVerification(True, result, count, previous)


def _failed(
    result: integrity.Verification, count: int, last: SignedDigest | None, problem: str
) -> SignedVerification:
    return SignedVerification(False, result, count, last, problem)


def _chain_problem(
    digest: SignedDigest, previous: SignedDigest | None, public: Ed25519PublicKey, own: str
) -> str | None:
    expected = 1 if previous is None else previous.number + 1
    if digest.number != expected:
        return (
            f"signed digest #{expected} is missing (the next stored is #{digest.number}): removed"
        )
    if digest.key_id != own:
        return (
            f"{digest.describe()} names key {digest.key_id}, not the public key given ({own}): "
            "the wrong key, or a digest forged under another key"
        )
    if not digest.signed_by(public):
        return (
            f"{digest.describe()}: its signature does not verify with public key {own} "
            "(forged or altered)"
        )
    if previous is not None and digest.previous != previous.signature:
        return (
            f"{digest.describe()} does not sign signed digest #{previous.number}'s signature: "
            "a digest was removed, reordered or replaced"
        )
    if previous is not None and digest.position < previous.position:
        return (
            f"{digest.describe()} is at a position before signed digest #{previous.number}'s "
            f"({previous.position}): reordered"
        )
    return None


def _log_problem(led: Ledger, result: integrity.Verification, upto: int | None) -> str | None:
    """With the chain verified, each digest's signed hash must be the link at its position."""
    head = 0 if result.head is None else result.head.position
    matched = 0
    for digest in stored(led, upto):
        if digest.position > head:
            return (
                f"the log ends at position {head}, before {digest.describe()}: truncated "
                "(events removed from the end)"
            )
        link: str | None = chain.GENESIS
        if digest.position != 0:
            row = led.side.select_one(digest_chain.SELECT_LINK, (digest.position,))
            link = None if row is None else str(row["hash"])
        if link != digest.hash:
            return (
                f"the log at position {digest.position} is not what {digest.describe()} "
                f"signed: history rewritten between positions {matched + 1} and "
                f"{digest.position}"
            )
        matched = digest.position
    return None
