"""``/internal/auth``: what notifications asks of auth (its service tokens only; others 403)."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends

from auth_service.deps import DeliveryDep, OtpStoreDep, SessionDep, SettingsDep
from auth_service.errors import UserNotFound
from auth_service.schemas import (
    TelegramChatOut,
    TelegramContactOutcome,
    TelegramContactRequest,
    TelegramStartOutcome,
    TelegramStartRequest,
)
from auth_service.service import telegram, users
from jwt_core_lib import TokenClaims
from storefront_kit.problems import responses
from storefront_kit.security import allow_callers

__all__ = ["router"]

router = APIRouter(prefix="/internal/auth", tags=["internal"], responses=responses(401, 403))

#: The Telegram bot lives in notifications: only it reports what happens in chats and reads them.
Notifications = Annotated[TokenClaims, Depends(allow_callers("notifications"))]


@router.post("/telegram/start", responses=responses(422))
async def telegram_start(
    body: TelegramStartRequest,
    _caller: Notifications,
    store: OtpStoreDep,
    settings: SettingsDep,
) -> TelegramStartOutcome:
    """A chat pressed Start on a login link: the bot must ask it for its own contact."""
    outcome = await telegram.telegram_start(
        store=store, settings=settings, token=body.token, chat_id=body.chat_id
    )
    return TelegramStartOutcome(outcome=outcome)


@router.post("/telegram/contact", responses=responses(422))
async def telegram_contact(
    body: TelegramContactRequest,
    _caller: Notifications,
    session: SessionDep,
    store: OtpStoreDep,
    delivery: DeliveryDep,
    settings: SettingsDep,
) -> TelegramContactOutcome:
    """A reply in a chat that pressed Start: the code goes there only if it proves the phone."""
    return await telegram.telegram_contact(
        session=session,
        store=store,
        delivery=delivery,
        settings=settings,
        chat_id=body.chat_id,
        sender_id=body.sender_id,
        contact=body.contact,
    )


@router.get("/users/{user_id}/telegram", responses=responses(UserNotFound))
async def user_telegram(
    user_id: UUID, _caller: Notifications, session: SessionDep
) -> TelegramChatOut:
    """The user's linked Telegram chat (null when none)."""
    return TelegramChatOut(user_id=user_id, chat_id=await users.chat_of(session, user_id))
