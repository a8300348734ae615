"""Fire-and-forget work that outlives its request, and is still waited for at shutdown."""

import asyncio
from collections.abc import Coroutine
from typing import Any

from storefront_kit.logging import get_logger

__all__ = ["TaskSet"]

logger = get_logger(__name__)


class TaskSet:
    """Background tasks of one process: references kept, crashes logged, drained on close."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coroutine: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
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
