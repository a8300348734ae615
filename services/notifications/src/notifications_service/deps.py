"""Annotated dependency aliases: what an endpoint may ask for."""

from typing import Annotated

from fastapi import Depends
from redis.asyncio import Redis

from notifications_service.clients.auth import AuthClient
from notifications_service.clients.chats import ChatDirectory
from notifications_service.clients.telegram import TelegramBot
from notifications_service.settings import NotificationsSettings
from notifications_service.state import NotificationsState
from storefront_kit.audit import AdminAudit
from storefront_kit.db import SessionDep
from storefront_kit.paging import Paging, paging_dependency, settings_page_limits
from storefront_kit.security import AdminUser
from storefront_kit.state import state_dependency, state_part
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
#: ``<PREFIX>_PAGE_SIZE_DEFAULT``/``_MAX`` of the service's lists.
_PAGE_LIMITS = settings_page_limits(NotificationsState)


# Each reads the state itself (here or through ``state_part``): one dependency to
# resolve, not two.
SettingsDep = Annotated[
    NotificationsSettings, Depends(state_part(NotificationsState, lambda state: state.settings))
]
RedisDep = Annotated[Redis, Depends(state_part(NotificationsState, lambda state: state.redis))]
TelegramDep = Annotated[
    TelegramBot, Depends(state_part(NotificationsState, lambda state: state.telegram))
]
AuthClientDep = Annotated[
    AuthClient, Depends(state_part(NotificationsState, lambda state: state.auth_client))
]
TasksDep = Annotated[TaskSet, Depends(state_part(NotificationsState, lambda state: state.tasks))]
ChatsDep = Annotated[
    ChatDirectory, Depends(state_part(NotificationsState, lambda state: state.chats))
]
DeadLetterPaging = Annotated[Paging, Depends(paging_dependency(_PAGE_LIMITS, name="limit"))]
"""``?limit=`` of the dead-letter list (``NOTIFICATIONS_PAGE_SIZE_DEFAULT``/``_MAX``)."""
