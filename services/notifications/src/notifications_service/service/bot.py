"""The bot's side of a conversation: ``/start <token>`` logs a chat in, anything else is help."""

import re

from telegram import Update
from telegram.error import TelegramError

from notifications_service import templates
from notifications_service.adapters.auth import AuthClient, AuthUnavailable
from notifications_service.adapters.telegram import TelegramBot
from storefront_kit.logging import get_logger

__all__ = ["handle_update", "start_payload"]

logger = get_logger(__name__)

# auth's link tokens; anything else cannot be one, so auth is not even asked.
_LINK_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_START = re.compile(r"^/start(?:@[A-Za-z0-9_]{1,64})?(?:\s+(?P<payload>\S*))?\s*$")


def start_payload(text: str) -> str | None:
    """``"/start abc"`` -> ``"abc"``, ``"/start"`` -> ``""``; None when it is no /start."""
    match = _START.match(text.strip())
    if match is None:
        return None
    return match["payload"] or ""


async def _answer(*, auth: AuthClient, chat_id: int, text: str) -> str:
    payload = start_payload(text)
    if payload is None:
        return templates.help_text()
    if not payload:
        return templates.welcome()
    if not _LINK_TOKEN.match(payload):
        logger.info("telegram_start_malformed_token", chat_id=chat_id)
        return templates.link_invalid()
    try:
        outcome = await auth.telegram_start(token=payload, chat_id=chat_id)
    except AuthUnavailable as exc:
        logger.warning("telegram_start_auth_unavailable", chat_id=chat_id, error=str(exc))
        return templates.start_unavailable()
    logger.info("telegram_start", chat_id=chat_id, outcome=outcome)
    if outcome == "code_sent":
        return templates.code_sent()
    if outcome == "chat_taken":
        return templates.chat_taken()
    return templates.link_invalid()


async def handle_update(*, update: Update, telegram: TelegramBot, auth: AuthClient) -> None:
    """Answer one update from a private chat; other updates are ignored."""
    message = update.message
    if message is None or message.chat.type != "private" or message.text is None:
        return
    chat_id = message.chat.id
    reply = await _answer(auth=auth, chat_id=chat_id, text=message.text)
    try:
        await telegram.send(chat_id, reply)
    except TelegramError as exc:
        logger.warning("telegram_reply_failed", chat_id=chat_id, error=type(exc).__name__)
