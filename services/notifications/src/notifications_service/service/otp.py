"""OTP delivery: accepted at once, sent in the background with bounded retries.

The code never appears in a log line, not even when delivery finally fails.
"""

from telegram.error import Forbidden, TelegramError

from notifications_service.clients.telegram import TelegramBot
from notifications_service.domain import templates
from notifications_service.settings import NotificationsSettings
from storefront_kit.logging import get_logger
from storefront_kit.tasks import TaskSet

__all__ = ["deliver_otp", "schedule_otp"]

logger = get_logger(__name__)


async def deliver_otp(
    *, telegram: TelegramBot, settings: NotificationsSettings, chat_id: int, code: str
) -> bool:
    """Send the code to ``chat_id``; True once Telegram accepted it."""
    text = templates.otp(code, valid_minutes=settings.otp_valid_minutes)
    try:
        await telegram.send(chat_id, text, deadline_s=settings.otp_deadline_s)
    except Forbidden:
        logger.warning("otp_delivery_failed", chat_id=chat_id, reason="bot_blocked")
        return False
    except TelegramError as exc:
        logger.warning(
            "otp_delivery_failed",
            chat_id=chat_id,
            reason="telegram_error",
            error=type(exc).__name__,
            attempts=settings.telegram_send_attempts,
        )
        return False
    logger.info("otp_delivered", chat_id=chat_id)
    return True


def schedule_otp(
    *,
    tasks: TaskSet,
    telegram: TelegramBot,
    settings: NotificationsSettings,
    chat_id: int,
    code: str,
) -> None:
    """Deliver the code in the background (the caller already has its 202)."""
    tasks.spawn(
        deliver_otp(telegram=telegram, settings=settings, chat_id=chat_id, code=code),
        name="notifications-otp",
    )
