"""HTTP routers of the notifications service (thin: parse, call the domain, shape the answer)."""

from fastapi import APIRouter

from notifications_service.api import admin, internal, telegram

__all__ = ["routers"]

routers: list[APIRouter] = [telegram.router, internal.router, admin.router]
