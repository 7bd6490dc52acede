"""The next page of the log, read and decoded in a thread while the projector writes the
current one: the drivers let go of the GIL while the database works (`sqlite3_step`, a wait
on the network), so the reading thread's Python can run meanwhile, and its waits beside the
writer's Python."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

Page = tuple[Sequence[Any], list[Any]]  # the notifications and their decoded events


class ReadAhead:
    """At most one page read ahead, by one thread made on the first `start`. A page is only
    ever used for the position it was read from; `close` waits for the thread, so none is
    left behind."""

    def __init__(self, read: Callable[[int], Page]) -> None:
        self._read = read
        self._executor: ThreadPoolExecutor | None = None
        self._pending: tuple[int, Future[Page]] | None = None

    def start(self, start: int) -> None:
        """Begin reading the page from `start` on (dropping any other read ahead)."""
        self._drop()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="ledger-read-ahead")
        self._pending = (start, self._executor.submit(self._read, start))

    def take(self, start: int) -> Page | None:
        """The page read ahead from `start`, the read's errors raised here; None if no page
        was read from there (anything read ahead from elsewhere is dropped) or it is empty: an
        end of the log is only believed when read under the caller's lock."""
        pending = self._pending
        if pending is None or pending[0] != start:
            self._drop()
            return None
        self._pending = None
        page = pending[1].result()
        return page if page[0] else None

    def _drop(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None and not pending[1].cancel():
            pending[1].exception()  # waited for; its page and its error unused

    def close(self) -> None:
        self._drop()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def __enter__(self) -> ReadAhead:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
