"""The read API's hop to a worker thread: the answer, the error and the context variables of
the request come through; the event loop goes on meanwhile."""

import asyncio
import contextvars
import threading

import pytest

from projections.api.workers import in_worker

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id")


def test_the_work_runs_in_another_thread_and_its_answer_comes_back() -> None:
    def work(a: int, *, b: int) -> tuple[int, int]:
        return a + b, threading.get_ident()

    async def main() -> tuple[int, int]:
        return await in_worker(work, 2, b=3)

    total, thread = asyncio.run(main())
    assert total == 5
    assert thread != threading.get_ident()


def test_an_error_of_the_work_is_raised_in_the_caller() -> None:
    def work() -> None:
        raise LookupError("user 42 not found")

    with pytest.raises(LookupError, match="user 42 not found"):
        asyncio.run(in_worker(work))


def test_the_work_sees_the_request_s_context_variables() -> None:
    async def main() -> str:
        request_id.set("r-1")
        return await in_worker(request_id.get)

    assert asyncio.run(main()) == "r-1"


def test_the_loop_serves_other_tasks_while_the_work_waits() -> None:
    released = threading.Event()

    async def main() -> bool:
        waiting = asyncio.ensure_future(in_worker(released.wait, 5))
        await asyncio.sleep(0)
        released.set()  # runs in the loop while the worker waits: the loop was not held
        return await waiting

    assert asyncio.run(main()) is True
