"""``/internal/auth``: what notifications asks of auth (service tokens only)."""

from uuid import UUID

from fastapi import APIRouter

from auth_service.deps import DeliveryDep, OtpStoreDep, ServiceCaller, SessionDep, SettingsDep
from auth_service.errors import CallerNotAllowed, UserNotFound
from auth_service.schemas import (
    TelegramChatOut,
    TelegramContactOutcome,
    TelegramContactRequest,
    TelegramStartOutcome,
    TelegramStartRequest,
)
from auth_service.service import telegram, users
from storefront_kit.problems import responses

__all__ = ["router"]

router = APIRouter(prefix="/internal/auth", tags=["internal"], responses=responses(401))

#: Only the bot (in notifications) reports what happens in Telegram chats.
_BOT_CALLERS = frozenset({"notifications"})


@router.post("/telegram/start", responses=responses(CallerNotAllowed, 422))
async def telegram_start(
    body: TelegramStartRequest,
    caller: ServiceCaller,
    store: OtpStoreDep,
    settings: SettingsDep,
) -> TelegramStartOutcome:
    """A chat pressed Start on a login link: the bot must ask it for its own contact."""
    if caller.subject not in _BOT_CALLERS:
        raise CallerNotAllowed(f"Service {caller.subject!r} may not report Telegram starts.")
    outcome = await telegram.telegram_start(
        store=store, settings=settings, token=body.token, chat_id=body.chat_id
    )
    return TelegramStartOutcome(outcome=outcome)


@router.post("/telegram/contact", responses=responses(CallerNotAllowed, 422))
async def telegram_contact(
    body: TelegramContactRequest,
    caller: ServiceCaller,
    session: SessionDep,
    store: OtpStoreDep,
    delivery: DeliveryDep,
    settings: SettingsDep,
) -> TelegramContactOutcome:
    """A reply in a chat that pressed Start: the code goes there only if it proves the phone."""
    if caller.subject not in _BOT_CALLERS:
        raise CallerNotAllowed(f"Service {caller.subject!r} may not report Telegram contacts.")
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
    user_id: UUID, _caller: ServiceCaller, session: SessionDep
) -> TelegramChatOut:
    """The user's linked Telegram chat (null when none)."""
    return TelegramChatOut(user_id=user_id, chat_id=await users.chat_of(session, user_id))
