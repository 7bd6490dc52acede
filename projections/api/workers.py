"""The worker threads the read API's routes hand their blocking work to (a PostgreSQL round
trip, a catch-up, an answer that grows with the data), so that the event loop goes on serving
the other requests meanwhile.

The hop is `loop.run_in_executor` on a pool of the API's own, not FastAPI's
`run_in_threadpool`: measured with `scripts/api_cpu.py` on PostgreSQL, where every read
route hops once, anyio's hop (a capacity limiter, a queue per worker, a future per call) cost
more CPU a request than the executor's. The pool has anyio's default size, 40 threads, the
most requests waiting on the database at once."""

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Final, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

WORKERS: Final = 40
_pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="ledger-api")


async def in_worker(work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`work(*args, **kwargs)` run in a worker thread, with this task's context variables;
    a request cancelled meanwhile stops waiting, while the work (a read) runs to its end."""
    context = contextvars.copy_context()
    call = functools.partial(context.run, work, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_pool, call)
