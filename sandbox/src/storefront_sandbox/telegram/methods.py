"""The Bot API methods the platform uses, answered as Telegram answers them."""

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from storefront_sandbox.settings import SandboxSettings
from storefront_sandbox.telegram.errors import bad_request
from storefront_sandbox.telegram.markup import MarkupError, check_markup, normalize_parse_mode
from storefront_sandbox.telegram.params import (
    AnswerCallbackQuery,
    CommandScope,
    DeleteMessage,
    EditMessageReplyMarkup,
    EditMessageText,
    EditParams,
    SendChatAction,
    SendMessage,
    SetMyCommands,
    SetWebhook,
    parse_params,
)
from storefront_sandbox.telegram.state import (
    NO_WEBHOOK_INFO,
    SentMessage,
    TelegramState,
    Webhook,
    now,
)

__all__ = ["BY_LOWER", "MAX_TEXT", "METHODS", "Call", "Described"]

MAX_TEXT = 4096
_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_COMMAND = re.compile(r"^[a-z0-9_]{1,32}$")
#: Telegram's answer to an edit that would leave the message as it is.
_NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
_CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)


@dataclass(frozen=True)
class Described:
    """A result that Telegram accompanies with a ``description`` (setWebhook...)."""

    result: Any
    description: str


@dataclass(frozen=True)
class Call:
    """One Bot API call: who the bot is and what it asked."""

    state: TelegramState
    settings: SandboxSettings
    token: str
    params: Mapping[str, Any]

    @property
    def bot_user(self) -> dict[str, Any]:
        """The bot's User object; its id is the token's numeric part, as in Telegram."""
        return {
            "id": int(self.token.split(":", 1)[0]),
            "is_bot": True,
            "first_name": self.settings.telegram_bot_first_name,
            "username": self.settings.telegram_bot_username,
        }

    def message(self, sent: SentMessage) -> dict[str, Any]:
        """The Message object Telegram returns for one of the bot's messages."""
        message: dict[str, Any] = {
            "message_id": sent.message_id,
            "from": self.bot_user,
            "chat": self.state.chat(sent.chat_id),
            "date": sent.date,
            "text": sent.text,
        }
        if sent.edit_date is not None:
            message["edit_date"] = sent.edit_date
        # Only inline keyboards are part of a Message; reply keyboards live on the client.
        if sent.reply_markup and "inline_keyboard" in sent.reply_markup:
            message["reply_markup"] = sent.reply_markup
        return message


def _checked_text(text: str, parse_mode: str | None) -> tuple[str, str | None]:
    if not text.strip():
        raise bad_request("message text is empty")
    if len(text) > MAX_TEXT:
        raise bad_request("message is too long")
    try:
        mode = normalize_parse_mode(parse_mode)
        check_markup(text, mode)
    except MarkupError as exc:
        raise bad_request(str(exc)) from None
    return text, mode


def _get_me(call: Call) -> Any:
    return {
        **call.bot_user,
        "can_join_groups": True,
        "can_read_all_group_messages": False,
        "supports_inline_queries": False,
        "can_connect_to_business": False,
        "has_main_web_app": False,
    }


def _send_message(call: Call) -> Any:
    p = parse_params(SendMessage, call.params)
    text, mode = _checked_text(p.text, p.parse_mode)
    if p.chat_id <= 0:
        # Groups and channels are outside the platform's use: only private chats exist here.
        raise bad_request("chat not found")
    sent = SentMessage(
        message_id=call.state.next_message_id(p.chat_id),
        chat_id=p.chat_id,
        text=text,
        parse_mode=mode,
        date=now(),
        reply_markup=p.reply_markup,
    )
    call.state.messages.setdefault(p.chat_id, {})[sent.message_id] = sent
    return call.message(sent)


def _message_to_edit(call: Call, p: EditParams) -> SentMessage | None:
    """The bot's message an edit names, or Telegram's 400; None for an inline message,
    which is not kept here (Telegram answers its edit with ``True``)."""
    if p.inline_message_id is not None:
        return None
    return call.state.sent(p.chat_id, p.message_id, action="edit")


def _edit_message_text(call: Call) -> Any:
    p = parse_params(EditMessageText, call.params)
    sent = _message_to_edit(call, p)
    if sent is None:
        return True
    text, mode = _checked_text(p.text, p.parse_mode)
    if (text, p.reply_markup) == (sent.text, sent.reply_markup):
        raise bad_request(_NOT_MODIFIED)
    sent.text, sent.parse_mode, sent.reply_markup, sent.edit_date = (
        text,
        mode,
        p.reply_markup,
        now(),
    )
    return call.message(sent)


def _edit_message_reply_markup(call: Call) -> Any:
    p = parse_params(EditMessageReplyMarkup, call.params)
    sent = _message_to_edit(call, p)
    if sent is None:
        return True
    if p.reply_markup == sent.reply_markup:
        raise bad_request(_NOT_MODIFIED)
    sent.reply_markup, sent.edit_date = p.reply_markup, now()
    return call.message(sent)


def _delete_message(call: Call) -> Any:
    p = parse_params(DeleteMessage, call.params)
    call.state.sent(p.chat_id, p.message_id, action="delete")
    del call.state.messages[p.chat_id][p.message_id]
    return True


def _set_webhook(call: Call) -> Any:
    p = parse_params(SetWebhook, call.params)
    if not p.url:
        return _delete_webhook(call)
    parsed = httpx.URL(p.url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise bad_request("bad webhook: invalid webhook URL specified")
    if p.secret_token is not None and not _SECRET.match(p.secret_token):
        raise bad_request("secret token contains unallowed characters")
    webhook = Webhook(
        url=p.url,
        secret_token=p.secret_token,
        allowed_updates=p.allowed_updates or None,
        max_connections=p.max_connections,
        ip_address=p.ip_address,
        token=call.token,
    )
    previous = call.state.webhook
    call.state.webhook = webhook
    if previous is not None and previous.url == webhook.url:
        return Described(True, "Webhook is already set")
    return Described(True, "Webhook was set")


def _delete_webhook(call: Call) -> Any:
    had = call.state.webhook is not None
    call.state.webhook = None
    return Described(True, "Webhook was deleted" if had else "Webhook is already deleted")


def _get_webhook_info(call: Call) -> Any:
    webhook = call.state.webhook
    return webhook.info() if webhook else dict(NO_WEBHOOK_INFO)


def _scope_key(scope: dict[str, Any] | None, language_code: str) -> tuple[str, str]:
    return json.dumps(scope or {"type": "default"}, sort_keys=True), language_code


def _set_my_commands(call: Call) -> Any:
    p = parse_params(SetMyCommands, call.params)
    for command in p.commands:
        if not _COMMAND.match(command.command):
            raise bad_request("BOT_COMMAND_INVALID")
        if not 1 <= len(command.description) <= 256:
            raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
    call.state.commands[_scope_key(p.scope, p.language_code)] = [
        {"command": c.command, "description": c.description} for c in p.commands
    ]
    return True


def _get_my_commands(call: Call) -> Any:
    p = parse_params(CommandScope, call.params)
    return call.state.commands.get(_scope_key(p.scope, p.language_code), [])


def _delete_my_commands(call: Call) -> Any:
    p = parse_params(CommandScope, call.params)
    call.state.commands.pop(_scope_key(p.scope, p.language_code), None)
    return True


def _answer_callback_query(call: Call) -> Any:
    p = parse_params(AnswerCallbackQuery, call.params)
    if call.state.callback_queries.get(p.callback_query_id) is not False:
        # Unknown, or answered already: Telegram says the same in both cases.
        raise bad_request("query is too old and response timeout expired or query ID is invalid")
    call.state.callback_queries[p.callback_query_id] = True
    return True


def _send_chat_action(call: Call) -> Any:
    p = parse_params(SendChatAction, call.params)
    if p.action not in _CHAT_ACTIONS:
        raise bad_request("wrong parameter action in request")
    return True


METHODS: dict[str, Callable[[Call], Any]] = {
    "getMe": _get_me,
    "sendMessage": _send_message,
    "editMessageText": _edit_message_text,
    "editMessageReplyMarkup": _edit_message_reply_markup,
    "deleteMessage": _delete_message,
    "setWebhook": _set_webhook,
    "deleteWebhook": _delete_webhook,
    "getWebhookInfo": _get_webhook_info,
    "setMyCommands": _set_my_commands,
    "getMyCommands": _get_my_commands,
    "deleteMyCommands": _delete_my_commands,
    "answerCallbackQuery": _answer_callback_query,
    "sendChatAction": _send_chat_action,
}
# Telegram matches method names case-insensitively.
BY_LOWER = {name.lower(): name for name in METHODS}
