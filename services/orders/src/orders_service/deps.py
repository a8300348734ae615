"""Annotated dependency aliases: what an endpoint may ask for."""

from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from orders_service.saga.runner import SagaRunner
from orders_service.settings import OrdersSettings
from storefront_kit.audit import AuditContext, audit_context
from storefront_kit.db import request_session
from storefront_kit.security import AdminUser, CurrentUser, StaffUser

__all__ = [
    "AdminAudit",
    "AdminUser",
    "CurrentUser",
    "RedisDep",
    "RunnerDep",
    "SessionDep",
    "SettingsDep",
    "StaffUser",
]


# The accessors are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in
# its thread pool, a thread hop per dependency per request for a mere attribute read.
async def _settings(request: Request) -> OrdersSettings:
    settings: OrdersSettings = request.app.state.settings
    return settings


async def _redis(request: Request) -> Redis:
    redis: Redis = request.app.state.redis
    return redis


async def _runner(request: Request) -> SagaRunner:
    runner: SagaRunner = request.app.state.saga_runner
    return runner


SettingsDep = Annotated[OrdersSettings, Depends(_settings)]
RedisDep = Annotated[Redis, Depends(_redis)]
SessionDep = Annotated[AsyncSession, Depends(request_session, scope="function")]
RunnerDep = Annotated[SagaRunner, Depends(_runner)]


async def _admin_audit(request: Request, admin: AdminUser) -> AuditContext:
    settings: OrdersSettings = request.app.state.settings
    return audit_context(
        request,
        admin,
        service=settings.service_name,
        forwarded_allow_ips=settings.platform.forwarded_allow_ips,
    )


AdminAudit = Annotated[AuditContext, Depends(_admin_audit)]
"""An admin's request, as the audit log records its actor and origin."""
