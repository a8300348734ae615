"""Annotated dependency aliases: what an endpoint may ask for."""

from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis

from auth_service.clients.holders import DataHolders
from auth_service.clients.notifications import OtpDelivery
from auth_service.clients.otp_store import OtpStore
from auth_service.service.keys import AccessTokens, AuthKeys
from auth_service.settings import AuthSettings
from auth_service.state import AuthState
from storefront_kit.audit import AdminAudit, SelfAudit
from storefront_kit.db import SessionDep
from storefront_kit.forwarded import client_ip as forwarded_client_ip
from storefront_kit.paging import Paging, paging_dependency, settings_page_limits
from storefront_kit.rate_limits import RateLimiter
from storefront_kit.security import AdminUser, CurrentUser, StaffUser
from storefront_kit.state import state_dependency, state_part
from storefront_kit.tasks import TaskSet

__all__ = [
    "AccessTokensDep",
    "AdminAudit",
    "AdminUser",
    "AuditPaging",
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
    "StateDep",
    "TasksDep",
    "UserPaging",
    "client_ip",
]


#: Everything auth's lifespan built, typed (storefront_kit.state).
StateDep = Annotated[AuthState, Depends(state_dependency(AuthState))]
#: ``<PREFIX>_PAGE_SIZE_DEFAULT``/``_MAX`` of the service's lists.
_PAGE_LIMITS = settings_page_limits(AuthState)


# Each reads the state itself (here or through ``state_part``): one dependency to
# resolve, not two.
SettingsDep = Annotated[AuthSettings, Depends(state_part(AuthState, lambda state: state.settings))]
RedisDep = Annotated[Redis, Depends(state_part(AuthState, lambda state: state.redis))]
OtpStoreDep = Annotated[OtpStore, Depends(state_part(AuthState, lambda state: state.otp_store))]
RateLimiterDep = Annotated[
    RateLimiter, Depends(state_part(AuthState, lambda state: state.rate_limiter))
]
DeliveryDep = Annotated[
    OtpDelivery, Depends(state_part(AuthState, lambda state: state.otp_delivery))
]
KeysDep = Annotated[AuthKeys, Depends(state_part(AuthState, lambda state: state.keys))]
AccessTokensDep = Annotated[
    AccessTokens, Depends(state_part(AuthState, lambda state: state.access_tokens))
]
HoldersDep = Annotated[
    DataHolders, Depends(state_part(AuthState, lambda state: state.data_holders))
]
TasksDep = Annotated[TaskSet, Depends(state_part(AuthState, lambda state: state.tasks))]
UserPaging = Annotated[Paging, Depends(paging_dependency(_PAGE_LIMITS, name="size", numbered=True))]
"""``?page=&size=`` of the admin user list (``AUTH_PAGE_SIZE_DEFAULT``/``_MAX``)."""
AuditPaging = Annotated[Paging, Depends(paging_dependency(_PAGE_LIMITS, name="limit"))]
"""``?limit=`` of the audit log's keyset pages (the same settings)."""


def client_ip(request: Request) -> str:
    """The client's address (see :func:`storefront_kit.forwarded.client_ip`).

    Reads the settings the app was made with (the kit's app factory keeps them), so it
    also answers before the lifespan has started.
    """
    settings: AuthSettings = request.app.state.settings
    return forwarded_client_ip(request, forwarded_allow_ips=settings.platform.forwarded_allow_ips)


async def _client_ip(request: Request) -> str:
    # async: a sync dependency would cost a thread-pool hop per request.
    return client_ip(request)


ClientIp = Annotated[str, Depends(_client_ip)]
