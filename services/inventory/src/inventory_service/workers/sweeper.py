"""Background tasks of one replica: the outbox relay and the reservation expiry sweeper.

Both are safe with several replicas running (``FOR UPDATE SKIP LOCKED``), and both
survive database or Redis outages by retrying with backoff.
"""

import asyncio
import contextlib
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inventory_service.service.reservations import sweep_expired
from storefront_kit.logging import get_logger

__all__ = ["run_sweeper"]

logger = get_logger(__name__)


async def run_sweeper(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    stop: asyncio.Event,
    interval_s: float,
    batch_size: int,
    on_released: Callable[[], None],
) -> None:
    """Release expired reservations until ``stop`` is set; a full batch sweeps again at once."""
    backoff = interval_s
    while not stop.is_set():
        try:
            released = await sweep_expired(sessionmaker, batch_size=batch_size)
            backoff = interval_s
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning("reservation_sweep_failed", error=repr(exc))
            released = 0
            backoff = min(backoff * 2, max(interval_s, 10.0))
        if released:
            logger.info("reservations_expired", count=released)
            on_released()
        if released < batch_size:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=backoff)
