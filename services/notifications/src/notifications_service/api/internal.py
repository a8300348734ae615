"""``/internal/notifications``: what auth asks of notifications (its tokens only; others 403).

OTP delivery, and the forgetting of a user's cached chat when auth changes their link.
"""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, status

from jwt_core_lib import TokenClaims
from notifications_service.deps import ChatsDep, SessionDep, SettingsDep, TasksDep, TelegramDep
from notifications_service.schemas import (
    ChatForgetRequest,
    ChatForgotten,
    ExportedNotifications,
    OtpAccepted,
    OtpRequest,
)
from notifications_service.service import privacy
from notifications_service.service.otp import schedule_otp
from storefront_kit.logging import get_logger
from storefront_kit.problems import responses
from storefront_kit.security import allow_callers

__all__ = ["router"]

logger = get_logger(__name__)
router = APIRouter(
    prefix="/internal/notifications", tags=["internal"], responses=responses(401, 403)
)

#: Only auth issues login codes and owns the user -> chat links.
Auth = Annotated[TokenClaims, Depends(allow_callers("auth"))]


@router.post(
    "/otp",
    status_code=status.HTTP_202_ACCEPTED,
    responses=responses(422),
)
async def send_otp(
    body: OtpRequest,
    _caller: Auth,
    settings: SettingsDep,
    telegram: TelegramDep,
    tasks: TasksDep,
) -> OtpAccepted:
    """Queue a login code for the chat; delivery (with retries) happens after the 202."""
    if body.chat_id is None:
        # Auth owns phone -> chat links; without a chat there is nowhere to send it.
        logger.warning("otp_not_deliverable", reason="no_chat")
        return OtpAccepted(status="skipped", reason="no_chat")
    schedule_otp(
        tasks=tasks, telegram=telegram, settings=settings, chat_id=body.chat_id, code=body.code
    )
    return OtpAccepted(status="queued")


@router.post("/chats/forget", responses=responses(422))
async def forget_chat(body: ChatForgetRequest, _caller: Auth, chats: ChatsDep) -> ChatForgotten:
    """Auth changed the user's Telegram link: drop the cached chat (idempotent)."""
    await chats.forget(body.user_id)
    logger.info("chat_forgotten", user_id=str(body.user_id))
    return ChatForgotten()


@router.get("/users/{user_id}/export", responses=responses(422))
async def export_user(
    user_id: UUID, _caller: Auth, session: SessionDep, chats: ChatsDep
) -> ExportedNotifications:
    """The messages logged for the user and the chat cached for them (auth's data export)."""
    return await privacy.export_notifications(session, chats, user_id)
