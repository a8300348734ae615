"""``/internal/auth``: what notifications asks of auth (service tokens only)."""

from uuid import UUID

from fastapi import APIRouter

from auth_service.deps import DeliveryDep, OtpStoreDep, ServiceCaller, SessionDep, SettingsDep
from auth_service.errors import CallerNotAllowed, UserNotFound
from auth_service.schemas import (
    TelegramChatOut,
    TelegramStartOutcome,
    TelegramStartRequest,
)
from auth_service.service import otp, users
from storefront_kit.problems import responses

__all__ = ["router"]

router = APIRouter(prefix="/internal/auth", tags=["internal"], responses=responses(401))

#: Only the bot (in notifications) reports Start presses.
_START_CALLERS = frozenset({"notifications"})


@router.post("/telegram/start", responses=responses(CallerNotAllowed, 422))
async def telegram_start(
    body: TelegramStartRequest,
    caller: ServiceCaller,
    session: SessionDep,
    store: OtpStoreDep,
    delivery: DeliveryDep,
    settings: SettingsDep,
) -> TelegramStartOutcome:
    """A chat pressed Start on a login link: send it the code (TEMP link until verify)."""
    if caller.subject not in _START_CALLERS:
        raise CallerNotAllowed(f"Service {caller.subject!r} may not report Telegram starts.")
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
    user_id: UUID, _caller: ServiceCaller, session: SessionDep
) -> TelegramChatOut:
    """The user's linked Telegram chat (null when none)."""
    return TelegramChatOut(user_id=user_id, chat_id=await users.chat_of(session, user_id))
