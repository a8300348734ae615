"""Pieces both routers share: paging, the status filter, and where an order is polled."""

from typing import Annotated
from uuid import UUID

from fastapi import Query

from orders_service.domain.saga import OrderStatus
from orders_service.errors import InvalidPageSize
from orders_service.settings import OrdersSettings

__all__ = ["ORDERS_PATH", "Page", "Size", "StatusFilter", "check_size", "location"]

ORDERS_PATH = "/api/v1/orders"

Page = Annotated[int, Query(ge=1, le=100_000)]
Size = Annotated[int | None, Query(ge=1, description="Page size (bounded by settings).")]
#: ``?status=`` of an order list (repeatable: any of them).
StatusFilter = Annotated[list[OrderStatus] | None, Query(alias="status")]


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
