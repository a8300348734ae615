"""Background work of a process: fire-and-forget tasks, and stopping a lifespan's loops.

A request that hands work to the background (an OTP delivery, a bot reply, a clean-up
after a commit) answers at once; the work must still be held (the event loop keeps only
weak references to tasks), its crash logged, and at shutdown given a moment to finish:
a :class:`TaskSet` in the service's lifespan state does all three. The loops a lifespan
starts (consumers, relays, sweepers) run in :func:`background_loops`: told to stop with
one event on the way out, then awaited for a bounded time (:func:`stop_tasks`)::

    async with background_loops(timeout_s=settings.consumer_block_ms / 1000 + 2) as loops:
        if settings.background_tasks_enabled:
            loops.start(relay.run(loops.stop), name="inventory-outbox-relay")
        yield InventoryState(...)
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine, Iterable
from typing import Any, TypeVar

from storefront_kit.logging import get_logger

__all__ = ["BackgroundLoops", "TaskSet", "background_loops", "stop_tasks"]

logger = get_logger(__name__)

T = TypeVar("T")


class TaskSet:
    """Background tasks of one process: references kept, crashes logged, drained on close."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coroutine: Coroutine[Any, Any, T], *, name: str) -> asyncio.Task[T]:
        """Run ``coroutine`` in the background."""
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "background_task_crashed",
                task=task.get_name(),
                error=type(task.exception()).__name__,
            )

    def __len__(self) -> int:
        return len(self._tasks)

    async def aclose(self, timeout_s: float = 3.0) -> None:
        """Let tasks in flight finish for a moment, then cancel the rest."""
        pending = set(self._tasks)
        if not pending:
            return
        _, still_running = await asyncio.wait(pending, timeout=timeout_s)
        for task in still_running:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


async def stop_tasks(tasks: Iterable[asyncio.Task[Any]], *, timeout_s: float = 2.0) -> None:
    """Wait for loops told to stop; cancel whatever is still running after ``timeout_s``.

    Their errors are not raised again here: each loop logs its own, and shutdown goes on.
    """
    tasks = list(tasks)
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=timeout_s)
    for task in pending:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


class BackgroundLoops:
    """The loops of one lifespan: each runs until :attr:`stop` is set (see
    :func:`background_loops`)."""

    def __init__(self) -> None:
        #: Set when the lifespan ends: every loop started here returns once it sees it.
        self.stop = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []

    def start(self, loop: Coroutine[Any, Any, object], *, name: str) -> None:
        """Run ``loop`` in the background; it must return once it sees :attr:`stop`.

        A lifespan that must stop its loops before it shuts down something they use
        sets :attr:`stop` itself; leaving :func:`background_loops` sets it too.
        """
        self._tasks.append(asyncio.create_task(loop, name=name))

    def __len__(self) -> int:
        return len(self._tasks)

    async def aclose(self, timeout_s: float = 2.0) -> None:
        """Tell the loops to stop, give them ``timeout_s`` to return, cancel the rest."""
        self.stop.set()
        await stop_tasks(self._tasks, timeout_s=timeout_s)


@contextlib.asynccontextmanager
async def background_loops(*, timeout_s: float = 2.0) -> AsyncIterator[BackgroundLoops]:
    """The loops a lifespan starts, stopped on the way out.

    On exit (shutdown, or a failure on the way up) :meth:`BackgroundLoops.aclose`: the
    loops are told to stop, get ``timeout_s`` to return, and the rest are cancelled.
    """
    loops = BackgroundLoops()
    try:
        yield loops
    finally:
        await loops.aclose(timeout_s)
