"""Pieces both routers share: paging and waiting briefly for a saga to settle."""

import asyncio
from typing import Annotated
from uuid import UUID

from fastapi import Query
from sqlalchemy.ext.asyncio import AsyncSession

from orders_service import service
from orders_service.domain.saga import IN_FLIGHT, OrderStatus
from orders_service.errors import InvalidPageSize
from orders_service.models import CustomerOrder
from orders_service.saga.runner import SagaRunner
from orders_service.settings import OrdersSettings

__all__ = ["Page", "Size", "check_size", "location", "settled", "wait_for_saga"]

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


async def wait_for_saga(
    session: AsyncSession,
    runner: SagaRunner,
    order_id: UUID,
    *,
    timeout_s: float,
) -> CustomerOrder:
    """The order after its saga ran here for at most ``timeout_s`` (never cancelled).

    ``session`` holds no connection while it waits: the caller committed before.
    """
    task = runner.task_for(order_id)
    if task is not None and timeout_s > 0:
        await asyncio.wait({task}, timeout=timeout_s)
    return await service.get_order(session, order_id=order_id)
