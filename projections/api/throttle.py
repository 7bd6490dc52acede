"""Throttling of failed logins, per email and per client address, in this process's memory.

After `LEDGER_LOGIN_MAX_FAILURES` failures within `LEDGER_LOGIN_WINDOW` seconds, further
attempts for that email, or from that address, are refused until the oldest of those failures
leaves the window. Several servers behind one address need a shared store instead (README).
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Final

from ledger.errors import ValidationError
from ledger.storage.settings import whole_number_setting
from ledger.validation import Email, valid

MAX_FAILURES_VARIABLE: Final = "LEDGER_LOGIN_MAX_FAILURES"
WINDOW_VARIABLE: Final = "LEDGER_LOGIN_WINDOW"
DEFAULT_MAX_FAILURES: Final = 10
DEFAULT_WINDOW: Final = 900  # seconds


class LoginThrottle:
    def __init__(
        self, max_failures: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}  # the times of the recent failures
        self._swept = clock()
        self._lock = threading.Lock()

    @classmethod
    def from_environment(cls) -> LoginThrottle:
        """Raises ValidationError naming the variable when a setting is not a whole number."""
        max_failures = whole_number_setting(MAX_FAILURES_VARIABLE, minimum=1)
        window = whole_number_setting(WINDOW_VARIABLE, minimum=1)
        return cls(
            DEFAULT_MAX_FAILURES if max_failures is None else max_failures,
            DEFAULT_WINDOW if window is None else window,
        )

    def retry_after(self, email: str, address: str | None) -> int | None:
        """Seconds to wait before trying again with this email or from this address; None
        when an attempt may go ahead."""
        now = self._clock()
        waits = []
        with self._lock:
            for key in _keys(email, address):
                failures = self._recent(key, now)
                if len(failures) >= self.max_failures:
                    waits.append(failures[0] + self.window - now)
        return max(1, math.ceil(max(waits))) if waits else None

    def failed(self, email: str, address: str | None) -> None:
        now = self._clock()
        with self._lock:
            if now - self._swept >= self.window:  # forget the keys no one tried again
                for key in list(self._failures):
                    self._recent(key, now)
                self._swept = now
            for key in _keys(email, address):
                self._recent(key, now)
                self._failures.setdefault(key, deque(maxlen=self.max_failures)).append(now)

    def succeeded(self, email: str) -> None:
        """A right password clears the email's failures (not the address's: one account of
        its own would otherwise let a client reset its count at will)."""
        with self._lock:
            self._failures.pop(_email_key(email), None)

    def _recent(self, key: str, now: float) -> deque[float]:
        """The key's failures within the window (the older ones dropped)."""
        failures = self._failures.get(key, deque())
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            self._failures.pop(key, None)
        return failures


def _email_key(email: str) -> str:
    """The email as the ledger finds its user (normalised: one key for every spelling of it,
    e.g. decomposed accents or an IDNA domain), as a digest, so that this process's memory
    holds no email addresses in clear."""
    try:
        spelling = valid(Email, email, "email")
    except ValidationError:  # nobody's email: counted as given
        spelling = email.strip()
    return "email:" + hashlib.sha256(spelling.casefold().encode()).hexdigest()


def _keys(email: str, address: str | None) -> list[str]:
    return [_email_key(email)] + ([f"address:{address}"] if address else [])
