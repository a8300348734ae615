"""HTTP routers of the inventory service (thin: parse, call the domain, shape the answer)."""

from fastapi import APIRouter

from inventory_service.api import admin, internal

__all__ = ["routers"]

routers: list[APIRouter] = [admin.router, internal.router]
