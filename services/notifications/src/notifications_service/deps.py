"""Annotated dependency aliases: what an endpoint may ask for."""

from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from notifications_service.clients.auth import AuthClient
from notifications_service.clients.chats import ChatDirectory
from notifications_service.clients.telegram import TelegramBot
from notifications_service.settings import NotificationsSettings
from notifications_service.state import NotificationsState
from storefront_kit.audit import AuditContext, audit_context
from storefront_kit.db import request_session
from storefront_kit.paging import PageLimits, Paging, paging_dependency
from storefront_kit.security import AdminUser
from storefront_kit.state import service_state, state_dependency
from storefront_kit.tasks import TaskSet

__all__ = [
    "AdminAudit",
    "AdminUser",
    "AuthClientDep",
    "ChatsDep",
    "DeadLetterPaging",
    "RedisDep",
    "SessionDep",
    "SettingsDep",
    "StateDep",
    "TasksDep",
    "TelegramDep",
]


#: Everything notifications' lifespan built, typed (storefront_kit.state).
StateDep = Annotated[NotificationsState, Depends(state_dependency(NotificationsState))]


# Each reads the state itself: one dependency to resolve, not two.
async def _settings(request: Request) -> NotificationsSettings:
    return service_state(request, NotificationsState).settings


async def _redis(request: Request) -> Redis:
    return service_state(request, NotificationsState).redis


async def _telegram(request: Request) -> TelegramBot:
    return service_state(request, NotificationsState).telegram


async def _auth_client(request: Request) -> AuthClient:
    return service_state(request, NotificationsState).auth_client


async def _chats(request: Request) -> ChatDirectory:
    return service_state(request, NotificationsState).chats


async def _tasks(request: Request) -> TaskSet:
    return service_state(request, NotificationsState).tasks


async def _page_limits(request: Request) -> PageLimits:
    settings = service_state(request, NotificationsState).settings
    return PageLimits(default=settings.page_size_default, maximum=settings.page_size_max)


SettingsDep = Annotated[NotificationsSettings, Depends(_settings)]
RedisDep = Annotated[Redis, Depends(_redis)]
SessionDep = Annotated[AsyncSession, Depends(request_session, scope="function")]
TelegramDep = Annotated[TelegramBot, Depends(_telegram)]
AuthClientDep = Annotated[AuthClient, Depends(_auth_client)]
TasksDep = Annotated[TaskSet, Depends(_tasks)]
ChatsDep = Annotated[ChatDirectory, Depends(_chats)]
DeadLetterPaging = Annotated[Paging, Depends(paging_dependency(_page_limits, name="limit"))]
"""``?limit=`` of the dead-letter list (``NOTIFICATIONS_PAGE_SIZE_DEFAULT``/``_MAX``)."""


async def _admin_audit(request: Request, admin: AdminUser, settings: SettingsDep) -> AuditContext:
    return audit_context(
        request,
        admin,
        service=settings.service_name,
        forwarded_allow_ips=settings.platform.forwarded_allow_ips,
    )


AdminAudit = Annotated[AuditContext, Depends(_admin_audit)]
"""An admin's request, as the audit log records its actor and origin."""
