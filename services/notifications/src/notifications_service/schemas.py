"""Request and response models of the notifications API (strict: unknown fields refused)."""

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

__all__ = [
    "ChatForgetRequest",
    "ChatForgotten",
    "DeadLetter",
    "DeadLetterPage",
    "DeadLetterReplayed",
    "OtpAccepted",
    "OtpRequest",
    "WebhookAck",
]

ChatId = Annotated[int, Field(ge=-(2**52), le=2**52, strict=True, examples=[100200300])]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OtpRequest(_Strict):
    """A code to deliver (from auth)."""

    phone: Annotated[str, StringConstraints(pattern=r"^\+[1-9][0-9]{1,14}$")] = Field(
        examples=["+15555550123"]
    )
    code: Annotated[str, StringConstraints(pattern=r"^[0-9]{4,8}$")] = Field(examples=["123456"])
    chat_id: ChatId | None = None


class ChatForgetRequest(_Strict):
    """A user whose Telegram link changed (from auth)."""

    user_id: UUID


class ChatForgotten(BaseModel):
    """The cached chat of the user is gone; the next notification asks auth."""

    status: Literal["forgotten"] = "forgotten"


class OtpAccepted(BaseModel):
    """The code is queued for delivery, or skipped because no chat was named."""

    status: Literal["queued", "skipped"]
    reason: str | None = None


class WebhookAck(BaseModel):
    """What Telegram gets back (anything 2xx would do)."""

    ok: bool = True


class DeadLetter(BaseModel):
    """An event the consumer gave up on, and why."""

    entry_id: str
    dead_lettered_at: datetime
    event_id: str | None
    event_type: str | None
    reason: str
    original_entry_id: str | None
    envelope: dict[str, Any] | None = Field(description="The event as it was received.")
    raw: str | None = Field(default=None, description="The entry when it was not valid JSON.")


class DeadLetterReplayed(DeadLetter):
    """A dead letter put back on the consumer's stream (and audited)."""

    replayed_entry_id: str = Field(description="Its new entry on the consumer's stream.")
    audit_entry_id: str = Field(description="Its entry in the audit log (GET /admin/audit).")


class DeadLetterPage(BaseModel):
    """Newest first; pass ``next_before`` as ``before`` for the next page."""

    items: list[DeadLetter]
    next_before: str | None


class ExportedMessage(BaseModel):
    """One message logged for the user (a data export)."""

    id: UUID
    event_id: UUID
    event_type: str
    kind: str
    status: str
    chat_id: int
    attempts: int
    sent_at: datetime | None
    created_at: datetime


class ExportedNotifications(BaseModel):
    """The notifications part of a user's data export."""

    cached_chat_id: int | None
    messages: list[ExportedMessage]


__all__ += ["ExportedMessage", "ExportedNotifications"]
