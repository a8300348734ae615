"""Login by one-time code: send (and hand out a Telegram link), verify.

What the caller of ``send_code`` sees never depends on whether the phone is known,
linked or staff (no registration oracle): the same status, the same fields, always a
deep link. Where the code goes does: a linked (or freshly proven) chat gets it at once;
otherwise it waits until a chat proves the number (``service.telegram``).
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from auth_service import repository
from auth_service.clients.notifications import OtpDelivery
from auth_service.clients.otp_store import AttemptOutcome, OtpStore
from auth_service.domain.otp import code_digest, codes_match, new_code, new_link_token
from auth_service.domain.phones import InvalidPhoneNumber, normalise_phone
from auth_service.domain.roles import DEFAULT_ROLES
from auth_service.errors import (
    InvalidPhone,
    OtpCooldown,
    OtpExpired,
    OtpInvalid,
    OtpLocked,
    OtpRateLimited,
)
from auth_service.fields import phone_key
from auth_service.schemas import TokenPair
from auth_service.service import tokens, users
from auth_service.service.keys import AccessTokens
from auth_service.settings import AuthSettings
from storefront_kit.db import after_commit
from storefront_kit.logging import get_logger
from storefront_kit.rate_limits import RateLimited, RateLimiter

__all__ = [
    "SendResult",
    "issue_code",
    "parse_phone",
    "send_code",
    "verify_code",
]

logger = get_logger(__name__)


@dataclass(frozen=True)
class SendResult:
    """What ``/otp/send`` answers."""

    expires_in: int
    resend_in: int
    telegram_link: str


def parse_phone(text: str, *, settings: AuthSettings) -> str:
    """The E.164 form of ``text``, or :class:`InvalidPhone` (422)."""
    try:
        return normalise_phone(text, strict=settings.phone_strict_validation)
    except InvalidPhoneNumber as exc:
        raise InvalidPhone(f"Not a valid international phone number: {exc}.") from None


async def _limit(limiter: RateLimiter, scope: str, key: str) -> None:
    try:
        await limiter.hit(scope, key)
    except RateLimited as exc:
        raise OtpRateLimited(
            f"Too many codes requested for this {scope}; retry later.",
            retry_after=exc.retry_after,
            scope=scope,
        ) from None


async def issue_code(
    *, store: OtpStore, delivery: OtpDelivery, settings: AuthSettings, phone: str, chat_id: int
) -> None:
    """A fresh code replaces the pending one (attempts reset) and goes to ``chat_id``."""
    code = new_code()
    pepper = settings.otp_pepper.get_secret_value().encode()
    await store.put_code(
        phone, code_digest(pepper=pepper, phone=phone, code=code), settings.otp_ttl_s
    )
    delivery.schedule(phone=phone, code=code, chat_id=chat_id)


async def send_code(
    *,
    session: AsyncSession,
    store: OtpStore,
    limiter: RateLimiter,
    delivery: OtpDelivery,
    settings: AuthSettings,
    phone_text: str,
    client_ip: str,
) -> SendResult:
    """Send a code to the chat that proved the phone, if any; always hand out a deep link."""
    phone = parse_phone(phone_text, settings=settings)
    waiting = await store.cooldown_left(phone)
    if waiting:
        raise OtpCooldown(
            "A code was sent moments ago; wait before asking again.", retry_after=waiting
        )
    await _limit(limiter, "ip", client_ip)
    await _limit(limiter, "phone", phone_key(phone))
    waiting = await store.start_cooldown(phone, settings.otp_resend_cooldown_s)
    if waiting:  # a concurrent request for the same phone won
        raise OtpCooldown(
            "A code was sent moments ago; wait before asking again.", retry_after=waiting
        )

    # Every phone gets a link; it only ever links a chat that proves the number with the
    # sender's own contact (and never a new chat to a staff account).
    token = new_link_token()
    await store.put_link_token(token, phone, settings.otp_ttl_s)
    user = await repository.get_user_by_phone(session, phone)
    # A chat that proved the number moments ago (TEMP) wins over the linked one: it is
    # where the user is waiting, and verify makes it the user's chat.
    chat_id = await store.temp_chat(phone)
    channel = "temp_chat"
    if chat_id is None and user is not None:
        chat_id, channel = user.telegram_chat_id, "linked_chat"
    if chat_id is not None:
        await issue_code(
            store=store, delivery=delivery, settings=settings, phone=phone, chat_id=chat_id
        )
        logger.info("otp_sent", channel=channel, user_id=str(user.id) if user else None)
    else:
        logger.info("otp_link_issued")
    return SendResult(
        expires_in=settings.otp_ttl_s,
        resend_in=settings.otp_resend_cooldown_s,
        telegram_link=f"https://t.me/{settings.telegram_bot_username}?start={token}",
    )


async def verify_code(
    *,
    session: AsyncSession,
    store: OtpStore,
    delivery: OtpDelivery,
    access_tokens: AccessTokens,
    limiter: RateLimiter,
    settings: AuthSettings,
    phone_text: str,
    code: str,
    client_ip: str,
) -> TokenPair:
    """Check a code (one attempt counted first); on success log the user in."""
    phone = parse_phone(phone_text, settings=settings)
    # Beyond the attempts per code: codes checked per phone and per address over time.
    await limiter.hit("verify_ip", client_ip, scope="ip")
    await limiter.hit("verify_phone", phone_key(phone), scope="phone")
    attempt = await store.take_attempt(phone, settings.otp_max_attempts)
    if attempt.outcome is AttemptOutcome.NO_CODE:
        raise OtpExpired("No valid code for this phone: request a new one.")
    if attempt.outcome is AttemptOutcome.LOCKED:
        raise OtpLocked("Too many wrong codes: request a new one.")
    pepper = settings.otp_pepper.get_secret_value().encode()
    if not codes_match(attempt.digest, pepper=pepper, phone=phone, code=code):
        left = max(settings.otp_max_attempts - attempt.attempts, 0)
        raise OtpInvalid("The code is wrong.", attempts_left=left)
    if not await store.consume(phone, attempt.digest):
        raise OtpExpired("This code was used already: request a new one.")

    now = datetime.now(UTC)
    user, created = await repository.ensure_user(session, phone, roles=DEFAULT_ROLES)
    temp_chat = await store.temp_chat(phone)
    if temp_chat is not None:
        # The TEMP chat proved the number with its own contact: it becomes the user's chat,
        # taken from a customer it belonged to before (that account changed its number).
        def tell_notifications(user_id: UUID) -> None:
            # Notifications caches user -> chat: told only once the new link is committed.
            def tell() -> None:
                delivery.forget_chat(user_id)

            after_commit(session, tell)

        linked = await users.link_proven_chat(
            session, user=user, chat_id=temp_chat, now=now, on_change=tell_notifications
        )
        logger.info("telegram_link_final", user_id=str(user.id), chat_id=temp_chat, linked=linked)
        await store.drop_temp_chat(phone)
    await repository.record_login(session, user.id, now=now)
    logger.info("login", user_id=str(user.id), new_user=created)
    return await tokens.start_family(
        session=session, access_tokens=access_tokens, settings=settings, user=user, now=now
    )
