"""Telegram links: a chat proves a phone with its own shared contact before any code.

1. ``otp/send`` hands out ``t.me/<bot>?start=<token>``, the token bound to the phone.
2. Start on it (``telegram_start``) binds the token to the first chat that presses it and
   makes the bot ask for the user's contact; nothing is sent, nothing is linked.
3. The chat's reply (``telegram_contact``) links it (TEMP until verify) and gets the
   code only when it is the sender's own contact (``contact.user_id == from.id``) with
   the token's phone. Every other reply is refused and counted against the token, which
   is burned after ``AUTH_TELEGRAM_LINK_MAX_ATTEMPTS`` refusals.
"""

from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from auth_service import repository
from auth_service.clients.notifications import OtpDelivery
from auth_service.clients.otp_store import BindOutcome, OtpStore
from auth_service.domain import roles as role_rules
from auth_service.domain.linking import ContactVerdict, judge_contact
from auth_service.schemas import ContactOutcome, TelegramContact, TelegramContactOutcome
from auth_service.service.otp import issue_code
from auth_service.settings import AuthSettings
from storefront_kit.logging import get_logger

__all__ = ["StartOutcome", "telegram_contact", "telegram_start"]

logger = get_logger(__name__)

StartOutcome = Literal["contact_requested", "invalid_token"]

_REFUSALS: dict[ContactVerdict, ContactOutcome] = {
    ContactVerdict.NO_CONTACT: "contact_required",
    ContactVerdict.NOT_OWN: "not_own_contact",
    ContactVerdict.INVALID_PHONE: "invalid_phone",
    ContactVerdict.MISMATCH: "phone_mismatch",
}


async def telegram_start(
    *, store: OtpStore, settings: AuthSettings, token: str, chat_id: int
) -> StartOutcome:
    """A chat pressed Start on a deep link: bind the link to it and ask for the contact."""
    binding = await store.bind_link(token, chat_id, settings.telegram_link_max_attempts)
    if binding.outcome is BindOutcome.BOUND:
        logger.info("telegram_start", chat_id=chat_id, outcome="contact_requested")
        return "contact_requested"
    if binding.outcome is not BindOutcome.NO_LINK:
        # Another chat pressed Start on this link first: a forwarded or replayed link.
        logger.warning(
            "telegram_start_other_chat",
            chat_id=chat_id,
            burned=binding.outcome is BindOutcome.BURNED,
        )
    return "invalid_token"


async def _refuse(
    store: OtpStore, settings: AuthSettings, *, token: str, chat_id: int, outcome: ContactOutcome
) -> TelegramContactOutcome:
    left = await store.fail_link(token, settings.telegram_link_max_attempts)
    logger.warning("telegram_contact_refused", chat_id=chat_id, outcome=outcome, attempts_left=left)
    if left == 0:
        await store.drop_pending(chat_id)
        return TelegramContactOutcome(outcome="link_burned", attempts_left=0)
    return TelegramContactOutcome(outcome=outcome, attempts_left=left)


async def telegram_contact(
    *,
    session: AsyncSession,
    store: OtpStore,
    delivery: OtpDelivery,
    settings: AuthSettings,
    chat_id: int,
    sender_id: int,
    contact: TelegramContact | None,
) -> TelegramContactOutcome:
    """A reply in a chat that pressed Start: link it and send the code only on proof."""
    pending = await store.pending_link(chat_id)
    if pending is None:
        return TelegramContactOutcome(outcome="no_pending_link")
    phone = pending.phone
    verdict = judge_contact(
        sender_id=sender_id,
        contact_user_id=contact.user_id if contact else None,
        contact_phone=contact.phone_number if contact else None,
        expected_phone=phone,
    )
    if verdict is ContactVerdict.PROVEN and sender_id != chat_id:
        # A private chat's id is its user's id: a reply from anyone else proves nothing.
        verdict = ContactVerdict.NOT_OWN
    if verdict is not ContactVerdict.PROVEN:
        return await _refuse(
            store, settings, token=pending.token, chat_id=chat_id, outcome=_REFUSALS[verdict]
        )

    owner = await repository.get_user_by_phone(session, phone)
    if owner is not None and role_rules.is_staff(owner.roles) and owner.telegram_chat_id != chat_id:
        # Staff chats are set by operators only (create-admin), even on a proven number.
        return await _refuse(
            store, settings, token=pending.token, chat_id=chat_id, outcome="not_allowed"
        )
    holder = await repository.get_user_by_chat(session, chat_id)
    if holder is not None and holder.phone != phone and role_rules.is_staff(holder.roles):
        logger.warning("telegram_contact_chat_taken", chat_id=chat_id, holder=str(holder.id))
        await store.drop_pending(chat_id)
        return TelegramContactOutcome(outcome="chat_taken")
    if not await store.spend_link(pending.token, chat_id):
        return TelegramContactOutcome(outcome="no_pending_link")  # burned or used meanwhile

    await store.put_temp_chat(phone, chat_id, settings.otp_ttl_s)
    await issue_code(
        store=store, delivery=delivery, settings=settings, phone=phone, chat_id=chat_id
    )
    logger.info("otp_sent", channel="telegram_contact", chat_id=chat_id)
    return TelegramContactOutcome(outcome="code_sent")
