"""Login by one-time code: send (or hand out a Telegram link), verify, Telegram Start."""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from auth_service import repository
from auth_service.adapters.notifications import OtpDelivery
from auth_service.adapters.otp_store import AttemptOutcome, OtpStore
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
from auth_service.keys import AccessTokens
from auth_service.schemas import TokenPair
from auth_service.service import tokens
from auth_service.settings import AuthSettings
from storefront_kit.logging import get_logger
from storefront_kit.rate_limits import RateLimited, RateLimiter

__all__ = [
    "SendResult",
    "StartOutcome",
    "parse_phone",
    "send_code",
    "telegram_start",
    "verify_code",
]

logger = get_logger(__name__)

StartOutcome = Literal["code_sent", "invalid_token", "chat_taken"]


@dataclass(frozen=True)
class SendResult:
    """What ``/otp/send`` answers."""

    expires_in: int
    resend_in: int
    telegram_link: str | None = None


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


async def _issue_code(
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
    """Send a code to the phone's linked chat, or hand out a Telegram deep link."""
    phone = parse_phone(phone_text, settings=settings)
    waiting = await store.cooldown_left(phone)
    if waiting:
        raise OtpCooldown(
            "A code was sent moments ago; wait before asking again.", retry_after=waiting
        )
    await _limit(limiter, "ip", client_ip)
    await _limit(limiter, "phone", phone)
    waiting = await store.start_cooldown(phone, settings.otp_resend_cooldown_s)
    if waiting:  # a concurrent request for the same phone won
        raise OtpCooldown(
            "A code was sent moments ago; wait before asking again.", retry_after=waiting
        )

    user = await repository.get_user_by_phone(session, phone)
    result = SendResult(expires_in=settings.otp_ttl_s, resend_in=settings.otp_resend_cooldown_s)
    if user is not None and user.telegram_chat_id is not None:
        await _issue_code(
            store=store,
            delivery=delivery,
            settings=settings,
            phone=phone,
            chat_id=user.telegram_chat_id,
        )
        logger.info("otp_sent", user_id=str(user.id), channel="linked_chat")
        return result

    # No linked chat: the code goes to whichever chat presses Start on this link.
    token = new_link_token()
    await store.put_link_token(token, phone, settings.otp_ttl_s)
    temp_chat = await store.temp_chat(phone)
    if temp_chat is not None:  # Start was pressed already: a resend reaches the same chat
        await _issue_code(
            store=store, delivery=delivery, settings=settings, phone=phone, chat_id=temp_chat
        )
    logger.info("otp_link_issued", resent_to_temp_chat=temp_chat is not None)
    return SendResult(
        expires_in=result.expires_in,
        resend_in=result.resend_in,
        telegram_link=f"https://t.me/{settings.telegram_bot_username}?start={token}",
    )


async def telegram_start(
    *,
    session: AsyncSession,
    store: OtpStore,
    delivery: OtpDelivery,
    settings: AuthSettings,
    token: str,
    chat_id: int,
) -> StartOutcome:
    """A chat pressed Start on a deep link: TEMP-link it to the phone and send it a code."""
    phone = await store.take_link_token(token)
    if phone is None:
        return "invalid_token"
    holder = await repository.get_user_by_chat(session, chat_id)
    if holder is not None and holder.phone != phone:
        logger.warning("telegram_start_chat_taken", chat_id=chat_id, holder=str(holder.id))
        return "chat_taken"
    owner = await repository.get_user_by_phone(session, phone)
    if owner is not None and owner.telegram_chat_id not in (None, chat_id):
        # The phone got its FINAL chat after this link was handed out: the link is stale,
        # and honouring it would let another chat receive this account's codes.
        logger.warning("telegram_start_phone_linked_elsewhere", user_id=str(owner.id))
        return "invalid_token"
    await store.put_temp_chat(phone, chat_id, settings.otp_ttl_s)
    await _issue_code(
        store=store, delivery=delivery, settings=settings, phone=phone, chat_id=chat_id
    )
    logger.info("otp_sent", channel="telegram_start", chat_id=chat_id)
    return "code_sent"


async def verify_code(
    *,
    session: AsyncSession,
    store: OtpStore,
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
    await limiter.hit("verify_phone", phone, scope="phone")
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
        linked = user.telegram_chat_id == temp_chat
        if user.telegram_chat_id is None:
            linked = await repository.link_chat(session, user.id, temp_chat, now=now)
        logger.info("telegram_link_final", user_id=str(user.id), chat_id=temp_chat, linked=linked)
        await store.drop_temp_chat(phone)
    await repository.record_login(session, user.id, now=now)
    logger.info("login", user_id=str(user.id), new_user=created)
    return await tokens.start_family(
        session=session, access_tokens=access_tokens, settings=settings, user=user, now=now
    )
