"""Pieces both routers share: paging and waiting briefly for a saga to settle."""

import asyncio
from typing import Annotated
from uuid import UUID

from fastapi import Depends, Query, Request
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from orders_service import service
from orders_service.domain.saga import IN_FLIGHT, OrderStatus
from orders_service.errors import InvalidPageSize
from orders_service.models import CustomerOrder
from orders_service.saga.runner import SagaRunner
from orders_service.settings import OrdersSettings
from storefront_kit.breaker import Breaker, BreakerOpen

__all__ = [
    "Page",
    "RedisWatch",
    "RedisWatchDep",
    "Size",
    "check_size",
    "location",
    "settled",
    "wait_for_saga",
]

ORDERS_PATH = "/api/v1/orders"

Page = Annotated[int, Query(ge=1, le=100_000)]
Size = Annotated[int | None, Query(ge=1, description="Page size (bounded by settings).")]


def check_size(size: int | None, settings: OrdersSettings) -> int:
    """The page size asked for, or the default; 422 beyond the configured maximum."""
    size = size or settings.page_size_default
    if size > settings.page_size_max:
        raise InvalidPageSize(
            f"size may be at most {settings.page_size_max}.", max_size=settings.page_size_max
        )
    return size


def location(order_id: UUID) -> str:
    """Where the order can be polled."""
    return f"{ORDERS_PATH}/{order_id}"


def settled(order: CustomerOrder) -> bool:
    """True once the saga is over (confirmed, failed, cancelled or later)."""
    return OrderStatus(order.status) not in IN_FLIGHT


class RedisWatch:
    """Whether a saga can progress now: its breakers keep their state in Redis, so with
    Redis down (frozen, unreachable) every step waits out Redis timeouts. A process-local
    breaker remembers a failed ping, so later checkouts do not wait at all."""

    def __init__(self, redis: Redis, *, breaker: Breaker, probe_timeout_s: float) -> None:
        self.redis = redis
        self.breaker = breaker
        self.probe_timeout_s = probe_timeout_s

    async def reachable(self) -> bool:
        """False at once while Redis is known down; else whether it answers a PING in time."""
        try:
            await self.breaker.call(self.redis.ping, timeout_s=self.probe_timeout_s)
        except (BreakerOpen, RedisError, TimeoutError):
            return False
        return True


async def _redis_watch(request: Request) -> RedisWatch:
    watch: RedisWatch = request.app.state.redis_watch
    return watch


RedisWatchDep = Annotated[RedisWatch, Depends(_redis_watch)]


async def wait_for_saga(
    session: AsyncSession,
    runner: SagaRunner,
    order_id: UUID,
    *,
    timeout_s: float,
    watch: RedisWatch | None = None,
) -> CustomerOrder:
    """The order after its saga ran here for at most ``timeout_s`` (never cancelled),
    or as soon as ``watch`` knows the saga cannot progress.

    ``session`` holds no connection while it waits: the caller committed before.
    """
    task = runner.task_for(order_id)
    if task is not None and timeout_s > 0:
        if watch is None:
            await asyncio.wait({task}, timeout=timeout_s)
        else:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout_s
            probe = asyncio.create_task(watch.reachable())
            done, _ = await asyncio.wait(
                {task, probe}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
            known_down = probe in done and not probe.result() and watch.breaker.is_open
            if not task.done() and not known_down:
                # Redis answers (or one slow ping proves nothing yet): wait for the saga
                # the rest of the window.
                await asyncio.wait({task}, timeout=max(0.0, deadline - loop.time()))
            if not probe.done():
                probe.cancel()
    return await service.get_order(session, order_id=order_id)
