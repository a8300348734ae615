"""Annotated dependency aliases: what an endpoint may ask for."""

from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from inventory_service.settings import InventorySettings
from storefront_kit.audit import AuditContext, audit_context
from storefront_kit.db import request_session
from storefront_kit.security import AdminUser, StaffUser

__all__ = ["AdminAudit", "AdminUser", "RedisDep", "SessionDep", "SettingsDep", "StaffUser"]


async def _settings(request: Request) -> InventorySettings:
    settings: InventorySettings = request.app.state.settings
    return settings


async def _redis(request: Request) -> Redis:
    redis: Redis = request.app.state.redis
    return redis


SettingsDep = Annotated[InventorySettings, Depends(_settings)]
RedisDep = Annotated[Redis, Depends(_redis)]
SessionDep = Annotated[AsyncSession, Depends(request_session, scope="function")]


async def _admin_audit(request: Request, admin: AdminUser) -> AuditContext:
    settings: InventorySettings = request.app.state.settings
    return audit_context(
        request,
        admin,
        service=settings.service_name,
        forwarded_allow_ips=settings.platform.forwarded_allow_ips,
    )


AdminAudit = Annotated[AuditContext, Depends(_admin_audit)]
"""An admin's request, as the audit log records its actor and origin."""
