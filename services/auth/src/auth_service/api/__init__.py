"""HTTP routers of the auth service (thin: parse, call the domain, shape the answer)."""

from fastapi import APIRouter

from auth_service.api import admin, audit, auth, internal, privacy, users

__all__ = ["routers"]

routers: list[APIRouter] = [
    auth.router,
    auth.jwks_router,
    users.router,
    privacy.router,
    admin.router,
    privacy.admin_router,
    audit.router,
    internal.router,
]
