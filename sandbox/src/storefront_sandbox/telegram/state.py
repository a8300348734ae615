"""What the Telegram stand-in remembers: the bot's messages, the webhook, the counters."""

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from storefront_sandbox.telegram.errors import bad_request

__all__ = ["NO_WEBHOOK_INFO", "SentMessage", "TelegramState", "Webhook", "now"]


def now() -> int:
    """Unix time in seconds, as Bot API dates are."""
    return int(time.time())


@dataclass
class SentMessage:
    """A message the bot sent, as ``GET /messages`` lists it."""

    message_id: int
    chat_id: int
    text: str
    parse_mode: str | None
    date: int
    reply_markup: dict[str, Any] | None
    edit_date: int | None = None

    def listing(self) -> dict[str, Any]:
        """The developer view."""
        return {
            "message_id": self.message_id,
            "chat_id": self.chat_id,
            "text": self.text,
            "parse_mode": self.parse_mode,
            "date": self.date,
            "reply_markup": self.reply_markup,
            "edit_date": self.edit_date,
        }


@dataclass
class Webhook:
    """What ``setWebhook`` registered, plus delivery errors for ``getWebhookInfo``."""

    url: str
    secret_token: str | None
    allowed_updates: list[str] | None
    max_connections: int
    ip_address: str | None
    token: str
    last_error_date: int | None = None
    last_error_message: str | None = None

    def info(self) -> dict[str, Any]:
        """The ``WebhookInfo`` object."""
        info: dict[str, Any] = {
            "url": self.url,
            "has_custom_certificate": False,
            "pending_update_count": 0,
            "max_connections": self.max_connections,
        }
        if self.ip_address:
            info["ip_address"] = self.ip_address
        if self.allowed_updates:
            info["allowed_updates"] = self.allowed_updates
        if self.last_error_date is not None:
            info["last_error_date"] = self.last_error_date
            info["last_error_message"] = self.last_error_message
        return info


NO_WEBHOOK_INFO = {"url": "", "has_custom_certificate": False, "pending_update_count": 0}


@dataclass
class TelegramState:
    """Everything the stand-in remembers; one instance per process."""

    messages: dict[int, dict[int, SentMessage]] = field(default_factory=dict)
    last_message_id: dict[int, int] = field(default_factory=dict)
    chats: dict[int, dict[str, Any]] = field(default_factory=dict)
    # Seeded from the clock so ids keep growing across restarts and resets: a webhook that
    # dedupes updates by id must never see an old id again.
    last_update_id: int = field(default_factory=lambda: int(time.time()))
    webhook: Webhook | None = None
    commands: dict[tuple[str, str], list[dict[str, str]]] = field(default_factory=dict)
    callback_queries: dict[str, bool] = field(default_factory=dict)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    # Bot API calls run their check-then-write under it; webhook posts never hold it.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def clear(self) -> None:
        """Forget everything but the update counter (``POST /reset``)."""
        self.messages.clear()
        self.last_message_id.clear()
        self.chats.clear()
        self.webhook = None
        self.commands.clear()
        self.callback_queries.clear()
        self.deliveries.clear()

    def next_message_id(self, chat_id: int) -> int:
        """Message ids count per private chat, shared by both sides as in Telegram."""
        self.last_message_id[chat_id] = self.last_message_id.get(chat_id, 0) + 1
        return self.last_message_id[chat_id]

    def next_update_id(self) -> int:
        """Update ids only grow."""
        self.last_update_id += 1
        return self.last_update_id

    def chat(self, chat_id: int) -> dict[str, Any]:
        """The Chat object of a private chat."""
        return {"id": chat_id, "type": "private", **self.chats.get(chat_id, {"first_name": "User"})}

    def sent(self, chat_id: int | None, message_id: int | None, *, action: str) -> SentMessage:
        """One of the bot's messages, or Telegram's 400 for it."""
        if chat_id is None:
            raise bad_request("chat_id is empty")
        if message_id is None:
            raise bad_request("message identifier is not specified")
        message = self.messages.get(chat_id, {}).get(message_id)
        if message is None:
            raise bad_request(f"message to {action} not found")
        return message
