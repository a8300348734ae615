"""A user's data: the export gathered from every service, and the erasure.

Export: auth's own rows plus each owning service's part, asked for concurrently over
their internal routes (:class:`~auth_service.clients.holders.DataHolders`); any part
missing makes the whole export a 503, never a partial document.

Erasure: in one transaction auth deletes the user's refresh tokens, clears every
personal field of the account (which stays, marked ``erased_at``, so the id can never
log in or be erased again, while the phone may register afresh), records the audit
entry and stages ``user.erased`` in its outbox. The relay publishes it on
``users.events``; orders, notifications and ws-gateway each do their part from their
own consumer group, at least once and idempotently, so a service that is down (or a
crash of auth after the commit) only delays its part. Before the commit, the user's
access tokens are marked revoked in Redis for their remaining lifetime
(:mod:`storefront_kit.revocation`), so they stop working on every service at once.
"""

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service import repository
from auth_service.clients.holders import DataHolders
from auth_service.clients.otp_store import OtpStore
from auth_service.errors import UserErased, UserNotFound
from auth_service.events import USER_ERASED, USERS_STREAM, UserErasedData
from auth_service.fields import phone_key
from auth_service.models import OutboxEvent, UserAccount
from auth_service.schemas import (
    ExportedNotifications,
    ExportedOrders,
    ExportedPresence,
    ExportedSession,
    UserExport,
    exported_account,
)
from auth_service.service import audit as audit_log
from auth_service.service.users import user_id_of
from storefront_kit.audit import AuditContext
from storefront_kit.events import EventEnvelope, add_outbox_event
from storefront_kit.logging import get_logger
from storefront_kit.rate_limits import RateLimiter
from storefront_kit.revocation import revoke_subject

__all__ = [
    "USERS_STREAM",
    "USER_ERASED",
    "Erasure",
    "erase_user",
    "export_user",
    "forget_phone_state",
]

logger = get_logger(__name__)


#: Rate limits counted per phone (their Redis keys name the phone's keyed hash).
_PHONE_LIMITS = ("phone", "verify_phone")


async def _account(session: AsyncSession, user_id: UUID, *, for_update: bool) -> UserAccount:
    user = await repository.get_account(session, user_id, for_update=for_update)
    if user is None:
        raise UserNotFound()
    if user.erased_at is not None:
        raise UserErased("This user was erased; nothing about them is held any more.")
    return user


async def export_user(
    session: AsyncSession,
    *,
    holders: DataHolders,
    audit: AuditContext,
    user_id: str | UUID,
) -> UserExport:
    """Everything held about the user; audited (``user.exported``) when complete."""
    uid = user_id_of(user_id)
    user = await _account(session, uid, for_update=False)
    tokens = await repository.list_refresh_tokens(session, uid)
    orders, notifications, presence = await asyncio.gather(
        holders.orders(uid, ExportedOrders),
        holders.notifications(uid, ExportedNotifications),
        holders.presence(uid, ExportedPresence),
    )
    document = UserExport(
        generated_at=datetime.now(UTC),
        account=exported_account(user),
        sessions=[ExportedSession.model_validate(t, from_attributes=True) for t in tokens],
        orders=orders.orders,
        notifications=notifications,
        presence=presence,
    )
    await audit_log.record(
        session,
        audit.entry(
            action="user.exported",
            target_type="user",
            target_id=uid,
            after={
                "orders": len(document.orders),
                "messages": len(document.notifications.messages),
                "sessions": len(document.sessions),
            },
        ),
    )
    logger.info("user_exported", orders=len(document.orders))
    return document


@dataclass(frozen=True)
class Erasure:
    """What :func:`erase_user` did."""

    user_id: UUID
    erased_at: datetime
    phone: str
    chat_id: int | None


async def erase_user(
    session: AsyncSession,
    *,
    redis: Redis,
    audit: AuditContext,
    user_id: str | UUID,
    access_token_ttl_s: int,
) -> Erasure:
    """Erase the user in auth and stage ``user.erased`` for the others (see module doc).

    Concurrent erasures of one user serialise on the row lock: the second finds it
    erased (:class:`UserErased`) and changes nothing.
    """
    uid = user_id_of(user_id)
    user = await _account(session, uid, for_update=True)
    phone, chat_id = user.phone, user.telegram_chat_id
    before = {"roles": list(user.roles), "telegram_linked": user.telegram_chat_id is not None}
    now = datetime.now(UTC)
    sessions = await repository.erase_account(session, uid, now=now)
    add_outbox_event(
        session,
        OutboxEvent,
        stream=USERS_STREAM,
        event=EventEnvelope.new(
            type=USER_ERASED,
            source="auth",
            data=UserErasedData(user_id=uid).model_dump(mode="json"),
        ),
    )
    await audit_log.record(
        session,
        audit.entry(
            action="user.erased",
            target_type="user",
            target_id=uid,
            before=before,
            after={"erased_at": now, "sessions_revoked": sessions},
        ),
    )
    await session.flush()
    # Before the commit: an erasure that commits has its access tokens refused (a Redis
    # failure here fails the request and rolls the erasure back, to be asked again).
    await revoke_subject(redis, str(uid), ttl_s=access_token_ttl_s + 60)
    # Never the id: log lines written from here on name no erased user.
    logger.info("user_erased", sessions_revoked=sessions)
    return Erasure(user_id=uid, erased_at=now, phone=phone, chat_id=chat_id)


async def forget_phone_state(
    *, store: OtpStore, limiter: RateLimiter, phone: str, chat_id: int | None
) -> None:
    """After the commit: drop the Redis keys named after the erased phone or chat (best
    effort; they expire within minutes anyway)."""
    try:
        await store.forget_phone(phone)
        if chat_id is not None:
            await store.drop_pending(chat_id)
        for limit in _PHONE_LIMITS:
            await limiter.clear(limit, phone_key(phone))
    except Exception as exc:
        logger.warning("erased_phone_keys_not_cleared", error=type(exc).__name__)
