"""Pieces both routers share: paging and waiting briefly for a saga to settle."""

import asyncio
from typing import Annotated
from uuid import UUID

from fastapi import Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from orders_service import service
from orders_service.domain.saga import IN_FLIGHT, OrderStatus
from orders_service.errors import InvalidPageSize
from orders_service.models import CustomerOrder
from orders_service.saga.runner import SagaRunner
from orders_service.settings import OrdersSettings
from storefront_kit.breaker import Breaker

__all__ = [
    "Page",
    "RedisBreakerDep",
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


async def _redis_breaker(request: Request) -> Breaker:
    breaker: Breaker = request.app.state.redis_breaker
    return breaker


#: The breaker of orders' Redis, opened by its watch the moment Redis stops answering.
RedisBreakerDep = Annotated[Breaker, Depends(_redis_breaker)]


async def wait_for_saga(
    session: AsyncSession,
    runner: SagaRunner,
    order_id: UUID,
    *,
    timeout_s: float,
    redis_breaker: Breaker | None = None,
) -> CustomerOrder:
    """The order after its saga ran here for at most ``timeout_s`` (never cancelled),
    or as soon as ``redis_breaker`` is open: the saga's provider breakers keep their
    state in Redis, so with Redis down it cannot progress, and the caller gets its 202
    at once instead of waiting out the window.

    ``session`` holds no connection while it waits: the caller committed before.
    """
    task = runner.task_for(order_id)
    if task is not None and timeout_s > 0:
        if redis_breaker is None:
            await asyncio.wait({task}, timeout=timeout_s)
        elif not redis_breaker.is_open:
            opened = asyncio.ensure_future(redis_breaker.wait_open())
            try:
                await asyncio.wait(
                    {task, opened}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                opened.cancel()
    return await service.get_order(session, order_id=order_id)
