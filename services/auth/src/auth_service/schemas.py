"""Request and response models. Requests are strict: unknown fields, wrong types and
absurd sizes are refused before any code runs."""

import re
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from auth_service.domain.otp import CODE_DIGITS
from auth_service.domain.refresh import MAX_REFRESH_TOKEN_LENGTH
from auth_service.domain.roles import Role
from auth_service.models import UserAccount
from storefront_kit.contracts import ContactOutcome

__all__ = [
    "AdminUserOut",
    "AuditEntryOut",
    "AuditPage",
    "ContactOutcome",
    "ErasureAccepted",
    "ExportedAccount",
    "ExportedMessage",
    "ExportedNotifications",
    "ExportedOrder",
    "ExportedOrders",
    "ExportedPresence",
    "ExportedSession",
    "ExportedStep",
    "ExportedTelegram",
    "OtpSendAccepted",
    "OtpSendRequest",
    "OtpVerifyRequest",
    "ProfilePatch",
    "RefreshRequest",
    "RolesUpdate",
    "TelegramChatOut",
    "TelegramContact",
    "TelegramContactOutcome",
    "TelegramContactRequest",
    "TelegramStartOutcome",
    "TelegramStartRequest",
    "TokenPair",
    "UserExport",
    "UserOut",
    "UserPage",
    "admin_user_out",
    "exported_account",
    "user_out",
]

# Generous for separators people type ("+1 (555) 000-0001"); the domain normalises.
PhoneText = Annotated[str, StringConstraints(min_length=2, max_length=32)]
Code = Annotated[str, StringConstraints(pattern=rf"^[0-9]{{{CODE_DIGITS}}}$")]
OpaqueToken = Annotated[str, StringConstraints(min_length=16, max_length=MAX_REFRESH_TOKEN_LENGTH)]
LinkToken = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{16,64}$")]
# Telegram chat ids fit in 52 bits; groups are negative.
ChatId = Annotated[int, Field(ge=-(2**52), le=2**52, strict=True)]
DisplayName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Locale = Annotated[
    str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Z][a-z]{3})?(-([A-Z]{2}|[0-9]{3}))?$")
]
_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@"
    r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=4096)


class OtpSendRequest(_Strict):
    """Ask for a login code."""

    phone: PhoneText = Field(examples=["+15550000001"], description="International (E.164).")


class OtpSendAccepted(BaseModel):
    """A code is on its way (or will be once the Telegram link is opened)."""

    expires_in: int = Field(description="Seconds the code stays valid.")
    resend_in: int = Field(description="Seconds before another code may be requested.")
    telegram_link: str = Field(
        description="The bot's deep link. Open it and press Start to receive the code in "
        "that chat after sharing your own contact (the chat must prove the number). "
        "Always present: a phone whose chat is linked gets its code there as well.",
        examples=["https://t.me/storefront_sandbox_bot?start=Q2hhbmdlTWVQbGVhc2U"],
    )


class OtpVerifyRequest(_Strict):
    """Exchange a code for tokens."""

    phone: PhoneText = Field(examples=["+15550000001"])
    code: Code = Field(examples=["042517"])


class TokenPair(BaseModel):
    """An access token (JWT) and the refresh token that renews it."""

    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 (a scheme name)
    expires_in: int = Field(description="Seconds the access token is valid.")


class RefreshRequest(_Strict):
    """A refresh token to rotate (or revoke, on logout)."""

    refresh_token: OpaqueToken


class UserOut(BaseModel):
    """A user's own profile."""

    model_config = ConfigDict(from_attributes=True)

    id: UUID
    phone: str
    roles: list[str]
    display_name: str | None
    email: str | None
    locale: str | None
    telegram_linked: bool
    created_at: datetime
    updated_at: datetime


class AdminUserOut(UserOut):
    """A user as staff see it."""

    telegram_chat_id: int | None
    telegram_linked_at: datetime | None
    last_login_at: datetime | None


class UserPage(BaseModel):
    """One page of users."""

    items: list[AdminUserOut]
    total: int
    page: int
    size: int


class ProfilePatch(_Strict):
    """Fields to change; ``null`` clears one, a field left out stays as it is."""

    display_name: DisplayName | None = None
    email: Annotated[str, StringConstraints(strip_whitespace=True, max_length=254)] | None = None
    locale: Locale | None = Field(default=None, examples=["en", "de-DE"])

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _EMAIL.match(value):
            raise ValueError("not an email address")
        local, domain = value.rsplit("@", 1)
        if local.startswith(".") or local.endswith(".") or ".." in local:
            raise ValueError("not an email address")
        return f"{local}@{domain.lower()}"


class RolesUpdate(_Strict):
    """The complete set of roles a user should hold."""

    roles: list[Role] = Field(min_length=1, max_length=3, examples=[["customer", "moderator"]])


class TelegramStartRequest(_Strict):
    """A Telegram user pressed Start on a deep link (``/start <token>``)."""

    token: LinkToken
    chat_id: ChatId


class TelegramStartOutcome(BaseModel):
    """What became of a Start: the chat is asked for its contact, or the link is no good."""

    outcome: Literal["contact_requested", "invalid_token"]


class TelegramContact(_Strict):
    """``message.contact`` as Telegram sent it (only what the proof needs)."""

    phone_number: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(
        examples=["15550000001"], description="As Telegram sends it (often without '+')."
    )
    user_id: ChatId | None = Field(
        default=None,
        examples=[100200300],
        description="Whose card it is; absent when the card is not a Telegram user's.",
    )


class TelegramContactRequest(_Strict):
    """A reply in a chat that pressed Start: a shared contact, or anything else (null)."""

    chat_id: ChatId = Field(examples=[100200300])
    sender_id: ChatId = Field(examples=[100200300], description="``message.from.id``.")
    contact: TelegramContact | None = Field(
        default=None, description="``message.contact``; null for any other reply."
    )


class TelegramContactOutcome(BaseModel):
    """What the reply proved: the code is on its way, or why nothing was linked.

    ``attempts_left`` counts the refused replies the link still takes (0: it is burned).
    """

    outcome: ContactOutcome
    attempts_left: int | None = None


class TelegramChatOut(BaseModel):
    """The FINAL Telegram chat of a user, if any."""

    user_id: UUID
    chat_id: int | None


class AuditEntryOut(BaseModel):
    """One staff action: who, what (target, before and after), when and from where."""

    model_config = ConfigDict(from_attributes=True)

    id: UUID
    occurred_at: datetime
    recorded_at: datetime
    service: str
    actor_id: str
    actor_roles: list[str]
    action: str
    target_type: str
    target_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request_id: str | None
    client_ip: str | None


class AuditPage(BaseModel):
    """Newest first; pass ``next_before`` as ``before`` for the next page (null: no more)."""

    items: list[AuditEntryOut]
    next_before: UUID | None


# -- Export and erasure (docs/auth.md, "Export and erasure") --------------------------
# What the other services answer on their /internal/.../export routes is parsed into
# these models (unknown fields refused), so the document's schema is the one published.


class _Held(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExportedTelegram(_Held):
    """The user's Telegram link as auth holds it."""

    linked: bool
    chat_id: int | None = None
    linked_at: datetime | None = None


class ExportedSession(_Held):
    """One refresh token of a login (only its hash is stored, so the token is not here)."""

    id: UUID
    family_id: UUID
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None
    revoked_at: datetime | None = None


class ExportedAccount(_Held):
    """The user row: who they are and how they log in."""

    id: UUID
    phone: str
    roles: list[str]
    display_name: str | None = None
    email: str | None = None
    locale: str | None = None
    telegram: ExportedTelegram
    last_login_at: datetime | None = None
    created_at: datetime
    updated_at: datetime


class ExportedStep(_Held):
    """One step (or compensation) of an order's saga: payment, shipment, stock..."""

    step: str
    kind: str
    status: str
    attempts: int
    created_at: datetime
    updated_at: datetime


class ExportedOrder(_Held):
    """One order as the orders service holds it."""

    id: UUID
    status: str
    reason: str | None = None
    reason_detail: str | None = None
    items: list[dict[str, Any]]
    lines: list[dict[str, Any]]
    subtotal: int | None = None
    total: int | None = None
    currency: str | None = None
    shipping_address: dict[str, Any]
    payment_method: dict[str, Any]
    client_address: str | None = None
    #: The pseudonym of the phone orders' fraud rules count by (``phone_ref``).
    phone_ref: str | None = None
    payment_id: str | None = None
    shipment_id: str | None = None
    tracking_number: str | None = None
    label_url: str | None = None
    steps: list[ExportedStep]
    created_at: datetime
    updated_at: datetime


class ExportedOrders(_Held):
    """The orders service's part (``GET /internal/orders/users/{id}/export``)."""

    orders: list[ExportedOrder]


class ExportedMessage(_Held):
    """One Telegram message the notifications service sent (or tried to) for the user."""

    id: UUID
    event_id: UUID
    event_type: str
    kind: str
    status: str
    chat_id: int
    attempts: int
    sent_at: datetime | None = None
    created_at: datetime


class ExportedNotifications(_Held):
    """The notifications service's part: its log and the chat it has cached for the user."""

    cached_chat_id: int | None = None
    messages: list[ExportedMessage]


class ExportedPresence(_Held):
    """The ws-gateway's part: whether the user is online now (it keeps no history)."""

    online: bool
    connections: int


class UserExport(_Held):
    """Everything the platform holds about one user, gathered from every service."""

    format: Literal["storefront.user-export.v1"] = "storefront.user-export.v1"
    generated_at: datetime
    account: ExportedAccount
    sessions: list[ExportedSession]
    orders: list[ExportedOrder]
    notifications: ExportedNotifications
    presence: ExportedPresence


class ErasureAccepted(BaseModel):
    """An erasure committed in auth; the other services finish their part from the event."""

    user_id: UUID
    status: Literal["accepted"] = "accepted"
    erased_at: datetime
    detail: str = (
        "The account is erased; orders, notifications and live sessions are erased from "
        "the user.erased event within moments (also after a restart of any service)."
    )


def user_out(user: UserAccount) -> UserOut:
    """The profile its owner sees."""
    return UserOut(
        id=user.id,
        phone=user.phone,
        roles=list(user.roles),
        display_name=user.display_name,
        email=user.email,
        locale=user.locale,
        telegram_linked=user.telegram_chat_id is not None,
        created_at=user.created_at,
        updated_at=user.updated_at,
    )


def admin_user_out(user: UserAccount) -> AdminUserOut:
    """The user as staff see it (with the Telegram chat and last login)."""
    return AdminUserOut(
        **user_out(user).model_dump(),
        telegram_chat_id=user.telegram_chat_id,
        telegram_linked_at=user.telegram_linked_at,
        last_login_at=user.last_login_at,
    )


def exported_account(user: UserAccount) -> ExportedAccount:
    """The user row as their data export holds it: the profile, the Telegram link, the
    last login."""
    return ExportedAccount(
        **user_out(user).model_dump(exclude={"telegram_linked"}),
        telegram=ExportedTelegram(
            linked=user.telegram_chat_id is not None,
            chat_id=user.telegram_chat_id,
            linked_at=user.telegram_linked_at,
        ),
        last_login_at=user.last_login_at,
    )
