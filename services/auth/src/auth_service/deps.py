"""Annotated dependency aliases: what an endpoint may ask for."""

from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.adapters.holders import DataHolders
from auth_service.adapters.notifications import OtpDelivery
from auth_service.adapters.otp_store import OtpStore
from auth_service.keys import AccessTokens, AuthKeys
from auth_service.settings import AuthSettings
from storefront_kit.audit import AuditContext, audit_context
from storefront_kit.db import request_session
from storefront_kit.forwarded import client_ip as forwarded_client_ip
from storefront_kit.rate_limits import RateLimiter
from storefront_kit.security import AdminUser, CurrentUser, StaffUser

__all__ = [
    "AccessTokensDep",
    "AdminAudit",
    "AdminUser",
    "ClientIp",
    "CurrentUser",
    "DeliveryDep",
    "HoldersDep",
    "KeysDep",
    "OtpStoreDep",
    "RateLimiterDep",
    "RedisDep",
    "SelfAudit",
    "SessionDep",
    "SettingsDep",
    "StaffUser",
    "client_ip",
]


async def _settings(request: Request) -> AuthSettings:
    settings: AuthSettings = request.app.state.settings
    return settings


async def _redis(request: Request) -> Redis:
    redis: Redis = request.app.state.redis
    return redis


async def _otp_store(request: Request) -> OtpStore:
    store: OtpStore = request.app.state.otp_store
    return store


async def _rate_limiter(request: Request) -> RateLimiter:
    limiter: RateLimiter = request.app.state.rate_limiter
    return limiter


async def _delivery(request: Request) -> OtpDelivery:
    delivery: OtpDelivery = request.app.state.otp_delivery
    return delivery


async def _keys(request: Request) -> AuthKeys:
    keys: AuthKeys = request.app.state.auth_keys
    return keys


async def _holders(request: Request) -> DataHolders:
    holders: DataHolders = request.app.state.data_holders
    return holders


async def _access_tokens(request: Request) -> AccessTokens:
    tokens: AccessTokens = request.app.state.access_tokens
    return tokens


def client_ip(request: Request) -> str:
    """The client's address (see :func:`storefront_kit.forwarded.client_ip`)."""
    settings: AuthSettings = request.app.state.settings
    return forwarded_client_ip(request, forwarded_allow_ips=settings.platform.forwarded_allow_ips)


async def _client_ip(request: Request) -> str:
    # async: a sync dependency would cost a thread-pool hop per request.
    return client_ip(request)


async def _admin_audit(request: Request, admin: AdminUser) -> AuditContext:
    settings: AuthSettings = request.app.state.settings
    return audit_context(
        request,
        admin,
        service=settings.service_name,
        forwarded_allow_ips=settings.platform.forwarded_allow_ips,
    )


async def _self_audit(request: Request, user: CurrentUser) -> AuditContext:
    settings: AuthSettings = request.app.state.settings
    return audit_context(
        request,
        user,
        service=settings.service_name,
        forwarded_allow_ips=settings.platform.forwarded_allow_ips,
    )


SettingsDep = Annotated[AuthSettings, Depends(_settings)]
RedisDep = Annotated[Redis, Depends(_redis)]
SessionDep = Annotated[AsyncSession, Depends(request_session, scope="function")]
OtpStoreDep = Annotated[OtpStore, Depends(_otp_store)]
RateLimiterDep = Annotated[RateLimiter, Depends(_rate_limiter)]
DeliveryDep = Annotated[OtpDelivery, Depends(_delivery)]
KeysDep = Annotated[AuthKeys, Depends(_keys)]
AccessTokensDep = Annotated[AccessTokens, Depends(_access_tokens)]
ClientIp = Annotated[str, Depends(_client_ip)]
AdminAudit = Annotated[AuditContext, Depends(_admin_audit)]
"""An admin's request, as the audit log records its actor and origin."""
SelfAudit = Annotated[AuditContext, Depends(_self_audit)]
"""A user acting on their own account (export, erasure), as the audit log records it."""
HoldersDep = Annotated[DataHolders, Depends(_holders)]
