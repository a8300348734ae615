"""HTTP routers of the orders service (thin: parse, call the domain, shape the answer)."""

from fastapi import APIRouter

from orders_service.api import admin, internal, orders

__all__ = ["routers"]

routers: list[APIRouter] = [orders.router, admin.router, internal.router]
