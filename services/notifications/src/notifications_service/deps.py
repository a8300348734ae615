"""Annotated dependency aliases: what an endpoint may ask for."""

from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from notifications_service.adapters.auth import AuthClient
from notifications_service.adapters.chats import ChatDirectory
from notifications_service.adapters.telegram import TelegramBot
from notifications_service.background import TaskSet
from notifications_service.settings import NotificationsSettings
from storefront_kit.audit import AuditContext, audit_context
from storefront_kit.db import request_session
from storefront_kit.security import AdminUser

__all__ = [
    "AdminAudit",
    "AdminUser",
    "AuthClientDep",
    "ChatsDep",
    "RedisDep",
    "SessionDep",
    "SettingsDep",
    "TasksDep",
    "TelegramDep",
]


async def _settings(request: Request) -> NotificationsSettings:
    settings: NotificationsSettings = request.app.state.settings
    return settings


async def _redis(request: Request) -> Redis:
    redis: Redis = request.app.state.redis
    return redis


async def _telegram(request: Request) -> TelegramBot:
    telegram: TelegramBot = request.app.state.telegram
    return telegram


async def _auth_client(request: Request) -> AuthClient:
    client: AuthClient = request.app.state.auth_client
    return client


async def _chats(request: Request) -> ChatDirectory:
    chats: ChatDirectory = request.app.state.chats
    return chats


async def _tasks(request: Request) -> TaskSet:
    tasks: TaskSet = request.app.state.tasks
    return tasks


SettingsDep = Annotated[NotificationsSettings, Depends(_settings)]
RedisDep = Annotated[Redis, Depends(_redis)]
SessionDep = Annotated[AsyncSession, Depends(request_session, scope="function")]
TelegramDep = Annotated[TelegramBot, Depends(_telegram)]
AuthClientDep = Annotated[AuthClient, Depends(_auth_client)]
TasksDep = Annotated[TaskSet, Depends(_tasks)]
ChatsDep = Annotated[ChatDirectory, Depends(_chats)]


async def _admin_audit(request: Request, admin: AdminUser) -> AuditContext:
    settings: NotificationsSettings = request.app.state.settings
    return audit_context(
        request,
        admin,
        service=settings.service_name,
        forwarded_allow_ips=settings.platform.forwarded_allow_ips,
    )


AdminAudit = Annotated[AuditContext, Depends(_admin_audit)]
"""An admin's request, as the audit log records its actor and origin."""
