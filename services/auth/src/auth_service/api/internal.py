"""``/internal/auth``: what notifications asks of auth (its service tokens only; others 403)."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends

from auth_service.deps import DeliveryDep, OtpStoreDep, SessionDep, SettingsDep
from auth_service.errors import UserNotFound
from auth_service.schemas import (
    TelegramChatOut,
    TelegramStartOutcome,
    TelegramStartRequest,
)
from auth_service.service import otp, users
from jwt_core_lib import TokenClaims
from storefront_kit.problems import responses
from storefront_kit.security import allow_callers

__all__ = ["router"]

router = APIRouter(prefix="/internal/auth", tags=["internal"], responses=responses(401, 403))

#: The Telegram bot lives in notifications: only it reports Start presses and reads chats.
Notifications = Annotated[TokenClaims, Depends(allow_callers("notifications"))]


@router.post("/telegram/start", responses=responses(422))
async def telegram_start(
    body: TelegramStartRequest,
    _caller: Notifications,
    session: SessionDep,
    store: OtpStoreDep,
    delivery: DeliveryDep,
    settings: SettingsDep,
) -> TelegramStartOutcome:
    """A chat pressed Start on a login link: send it the code (TEMP link until verify)."""
    outcome = await otp.telegram_start(
        session=session,
        store=store,
        delivery=delivery,
        settings=settings,
        token=body.token,
        chat_id=body.chat_id,
    )
    return TelegramStartOutcome(outcome=outcome)


@router.get("/users/{user_id}/telegram", responses=responses(UserNotFound))
async def user_telegram(
    user_id: UUID, _caller: Notifications, session: SessionDep
) -> TelegramChatOut:
    """The user's linked Telegram chat (null when none)."""
    return TelegramChatOut(user_id=user_id, chat_id=await users.chat_of(session, user_id))
