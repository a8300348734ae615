"""The bot's side of a conversation: a login link, the contact that proves the number, help.

``/start <token>`` never links a chat by itself: auth binds the link to the chat and the
bot asks for the user's own contact with a ``request_contact`` reply keyboard. Only the
contact message (``filters.CONTACT``) is checked by auth, which links the chat and sends
the code when the contact is the sender's own with the link's number. Anything else
typed while a login waits is refused (and counted) by auth too.
"""

import re
from dataclasses import dataclass

from redis.asyncio import Redis
from telegram import KeyboardButton, ReplyKeyboardMarkup, ReplyKeyboardRemove, Update
from telegram.error import TelegramError
from telegram.ext import filters

from notifications_service.clients.auth import AuthClient, AuthUnavailable, Contact, ContactResult
from notifications_service.clients.telegram import TelegramBot
from notifications_service.domain import templates
from storefront_kit.logging import get_logger
from storefront_kit.tasks import TaskSet

__all__ = ["Reply", "accept_update", "contact_keyboard", "handle_update", "start_payload"]

logger = get_logger(__name__)

#: Updates already taken, by update id (shared by every replica).
_SEEN = "notifications:tg:update:"

# auth's link tokens; anything else cannot be one, so auth is not even asked.
_LINK_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_START = re.compile(r"^/start(?:@[A-Za-z0-9_]{1,64})?(?:\s+(?P<payload>\S*))?\s*$")

Markup = ReplyKeyboardMarkup | ReplyKeyboardRemove | None


@dataclass(frozen=True)
class Reply:
    """What the bot answers: a text and, maybe, a reply keyboard (or its removal)."""

    text: str
    markup: Markup = None


def contact_keyboard() -> ReplyKeyboardMarkup:
    """One button that shares the user's own contact; hidden after use, sized to fit."""
    return ReplyKeyboardMarkup(
        [[KeyboardButton(templates.CONTACT_BUTTON, request_contact=True)]],
        one_time_keyboard=True,
        resize_keyboard=True,
        input_field_placeholder="Tap the button to share your number",
    )


def start_payload(text: str) -> str | None:
    """``"/start abc"`` -> ``"abc"``, ``"/start"`` -> ``""``; None when it is no /start."""
    match = _START.match(text.strip())
    if match is None:
        return None
    return match["payload"] or ""


async def _start(*, auth: AuthClient, chat_id: int, payload: str) -> Reply:
    if not payload:
        return Reply(templates.welcome())
    if not _LINK_TOKEN.match(payload):
        logger.info("telegram_start_malformed_token", chat_id=chat_id)
        return Reply(templates.link_invalid())
    try:
        outcome = await auth.telegram_start(token=payload, chat_id=chat_id)
    except AuthUnavailable as exc:
        logger.warning("telegram_start_auth_unavailable", chat_id=chat_id, error=str(exc))
        return Reply(templates.start_unavailable())
    logger.info("telegram_start", chat_id=chat_id, outcome=outcome)
    if outcome == "contact_requested":
        return Reply(templates.contact_request(), contact_keyboard())
    return Reply(templates.link_invalid())


def _contact_reply(result: ContactResult, *, typed: bool) -> Reply:
    left = result.attempts_left
    match result.outcome:
        case "code_sent":
            return Reply(templates.code_sent(), ReplyKeyboardRemove())
        case "contact_required":
            return Reply(templates.contact_required(attempts_left=left), contact_keyboard())
        case "not_own_contact":
            return Reply(templates.contact_not_own(attempts_left=left), contact_keyboard())
        case "invalid_phone":
            return Reply(templates.contact_phone_invalid(attempts_left=left), contact_keyboard())
        case "phone_mismatch":
            return Reply(
                templates.contact_phone_mismatch(attempts_left=left), ReplyKeyboardRemove()
            )
        case "link_burned":
            return Reply(templates.link_burned(), ReplyKeyboardRemove())
        case "chat_taken":
            return Reply(templates.chat_taken(), ReplyKeyboardRemove())
        case "not_allowed":
            return Reply(templates.link_not_allowed(), ReplyKeyboardRemove())
        case _:  # no_pending_link
            if typed:
                return Reply(templates.help_text())
            return Reply(templates.no_pending_link(), ReplyKeyboardRemove())


async def _reply_to_login(
    *, auth: AuthClient, chat_id: int, sender_id: int, contact: Contact | None
) -> Reply:
    """A contact, or other text, in a chat: auth decides whether it proves a pending login."""
    try:
        result = await auth.telegram_contact(chat_id=chat_id, sender_id=sender_id, contact=contact)
    except AuthUnavailable as exc:
        logger.warning("telegram_contact_auth_unavailable", chat_id=chat_id, error=str(exc))
        return Reply(templates.start_unavailable())
    logger.info("telegram_contact", chat_id=chat_id, outcome=result.outcome, shared=bool(contact))
    return _contact_reply(result, typed=contact is None)


async def _answer(update: Update, *, auth: AuthClient) -> Reply | None:
    message = update.message
    if message is None or message.chat.type != "private" or message.from_user is None:
        return None
    chat_id, sender_id = message.chat.id, message.from_user.id
    if filters.CONTACT.check_update(update):
        assert message.contact is not None
        contact = Contact(
            phone_number=message.contact.phone_number or "",
            user_id=message.contact.user_id,
        )
        return await _reply_to_login(
            auth=auth, chat_id=chat_id, sender_id=sender_id, contact=contact
        )
    if message.text is None:
        return None
    payload = start_payload(message.text)
    if payload is not None:
        return await _start(auth=auth, chat_id=chat_id, payload=payload)
    # Typed text (a number, or anything): refused while a login waits for the contact.
    return await _reply_to_login(auth=auth, chat_id=chat_id, sender_id=sender_id, contact=None)


async def _answer_callback(update: Update) -> None:
    # The bot sends no inline buttons: any callback is stale or forged. Say so, change nothing.
    query = update.callback_query
    assert query is not None
    try:
        await query.answer(text=templates.link_invalid(), show_alert=True)
    except TelegramError as exc:
        logger.info("telegram_callback_answer_failed", error=type(exc).__name__)


async def handle_update(*, update: Update, telegram: TelegramBot, auth: AuthClient) -> None:
    """Answer one update from a private chat; other updates are ignored."""
    if update.callback_query is not None:
        await _answer_callback(update)
        return
    reply = await _answer(update, auth=auth)
    if reply is None:
        return
    assert update.message is not None
    chat_id = update.message.chat.id
    try:
        await telegram.send(chat_id, reply.text, reply_markup=reply.markup)
    except TelegramError as exc:
        logger.warning("telegram_reply_failed", chat_id=chat_id, error=type(exc).__name__)


async def accept_update(
    *,
    update: Update,
    redis: Redis,
    tasks: TaskSet,
    telegram: TelegramBot,
    auth: AuthClient,
    dedupe_s: int,
) -> bool:
    """Handle ``update`` in the background unless it was seen already; True if accepted.

    Telegram redelivers an update it thinks failed; every replica shares this memory
    (``notifications:tg:update:<id>``, kept ``dedupe_s``), so each update is answered once.
    """
    first = await redis.set(f"{_SEEN}{update.update_id}", "1", nx=True, ex=dedupe_s)
    if not first:
        logger.info("telegram_update_duplicate", update_id=update.update_id)
        return False
    tasks.spawn(
        handle_update(update=update, telegram=telegram, auth=auth), name="notifications-update"
    )
    return True
