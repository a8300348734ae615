"""The saga recovery loop: sagas abandoned by a replica that died are claimed and resumed.

At start-up, then every ``recovery_interval_s`` (at once again while a full batch was
claimed), :meth:`~orders_service.service.saga.runner.SagaRunner.recover_once` claims the
in-flight sagas whose lease expired or whose retry is due and starts them here.
"""

import asyncio
import contextlib

from orders_service.service.saga.runner import SagaRunner
from storefront_kit.logging import get_logger

__all__ = ["run_recovery"]

logger = get_logger(__name__)


async def run_recovery(runner: SagaRunner, stop: asyncio.Event, *, interval_s: float) -> None:
    """Recover at once, then every ``interval_s`` until ``stop`` is set."""
    delay = interval_s
    while not stop.is_set():
        try:
            claimed = await runner.recover_once()
            delay = 0.0 if claimed >= runner.recovery_batch_size else interval_s
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning("saga_recovery_failed", error=repr(exc))
            delay = min(max(delay, interval_s) * 2, 60.0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
