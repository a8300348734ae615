"""Pieces both routers share: the status filter, and where an order is polled."""

from typing import Annotated
from uuid import UUID

from fastapi import Query

from orders_service.domain.saga import OrderStatus

__all__ = ["ORDERS_PATH", "StatusFilter", "location"]

ORDERS_PATH = "/api/v1/orders"

#: ``?status=`` of an order list (repeatable: any of them).
StatusFilter = Annotated[list[OrderStatus] | None, Query(alias="status")]


def location(order_id: UUID) -> str:
    """Where the order can be polled."""
    return f"{ORDERS_PATH}/{order_id}"
