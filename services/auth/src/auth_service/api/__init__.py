"""HTTP routers of the auth service (thin: parse, call the domain, shape the answer)."""

from fastapi import APIRouter

from auth_service.api import admin, audit, auth, internal, users

__all__ = ["routers"]

routers: list[APIRouter] = [
    auth.router,
    auth.jwks_router,
    users.router,
    admin.router,
    audit.router,
    internal.router,
]
