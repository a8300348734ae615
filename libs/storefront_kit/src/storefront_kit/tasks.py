"""Background work of a process: fire-and-forget tasks, and stopping a lifespan's loops.

A request that hands work to the background (an OTP delivery, a bot reply, a clean-up
after a commit) answers at once; the work must still be held (the event loop keeps only
weak references to tasks), its crash logged, and at shutdown given a moment to finish:
a :class:`TaskSet` in the service's lifespan state does all three. The loops a lifespan
starts (consumers, relays, sweepers) are told to stop with an event and then awaited
for a bounded time with :func:`stop_tasks`.
"""

import asyncio
import contextlib
from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar

from storefront_kit.logging import get_logger

__all__ = ["TaskSet", "stop_tasks"]

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
