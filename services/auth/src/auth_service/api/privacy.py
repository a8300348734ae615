"""A user's data: export and erasure, by the user themselves or by an admin (audited)."""

from dataclasses import dataclass
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, status
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.clients.otp_store import OtpStore
from auth_service.deps import (
    AdminAudit,
    HoldersDep,
    OtpStoreDep,
    RateLimiterDep,
    RedisDep,
    SelfAudit,
    SessionDep,
    SettingsDep,
    TasksDep,
)
from auth_service.errors import ExportUnavailable, UserErased, UserNotFound
from auth_service.schemas import ErasureAccepted, UserExport
from auth_service.service import privacy
from auth_service.settings import AuthSettings
from storefront_kit.audit import AuditContext
from storefront_kit.db import after_commit
from storefront_kit.problems import responses
from storefront_kit.rate_limits import RateLimiter
from storefront_kit.tasks import TaskSet

__all__ = ["admin_router", "router"]

router = APIRouter(prefix="/api/v1/users", tags=["users"], responses=responses(401))
admin_router = APIRouter(
    prefix="/api/v1/admin/users", tags=["admin: users"], responses=responses(401, 403)
)

_EXPORT_DOC = (
    "One JSON document with everything the platform holds about the user: the account "
    "and its sessions (auth), orders with lines, totals, addresses, payments and "
    "shipments (orders), the Telegram messages sent (notifications) and whether they are "
    "online (ws-gateway). A service that cannot answer makes it a 503 "
    "`export_unavailable` (retry): never a partial document. Audited (`user.exported`)."
)
_ERASE_DOC = (
    "Erase the user: sessions and access tokens revoked at once, Telegram unlinked, "
    "phone and profile cleared (the account can never log in again; the phone may "
    "register as a new user). Orders are pseudonymised (totals and lines kept), the "
    "notification log and live sessions dropped by each service from the `user.erased` "
    "event, moments later and also after a restart. 202: accepted and committed. "
    "Audited (`user.erased`)."
)


@dataclass(frozen=True)
class _Eraser:
    """What an erasure needs besides who erases whom: one dependency for both routes."""

    session: AsyncSession
    redis: Redis
    store: OtpStore
    limiter: RateLimiter
    settings: AuthSettings
    tasks: TaskSet

    async def __call__(self, audit: AuditContext, user_id: str | UUID) -> ErasureAccepted:
        erasure = await privacy.erase_user(
            self.session,
            redis=self.redis,
            audit=audit,
            user_id=user_id,
            access_token_ttl_s=self.settings.access_token_ttl_s,
        )

        def clean_up() -> None:
            # In the background, held and drained at shutdown by the lifespan's TaskSet.
            self.tasks.spawn(
                privacy.forget_phone_state(
                    store=self.store,
                    limiter=self.limiter,
                    phone=erasure.phone,
                    chat_id=erasure.chat_id,
                ),
                name="auth-erasure-clean-up",
            )

        after_commit(self.session, clean_up)
        return ErasureAccepted(user_id=erasure.user_id, erased_at=erasure.erased_at)


async def _eraser(
    session: SessionDep,
    redis: RedisDep,
    store: OtpStoreDep,
    limiter: RateLimiterDep,
    settings: SettingsDep,
    tasks: TasksDep,
) -> _Eraser:
    return _Eraser(session, redis, store, limiter, settings, tasks)


EraserDep = Annotated[_Eraser, Depends(_eraser)]


@router.get(
    "/me/export",
    responses=responses(UserNotFound, UserErased, ExportUnavailable),
    description=_EXPORT_DOC,
)
async def export_me(audit: SelfAudit, session: SessionDep, holders: HoldersDep) -> UserExport:
    """Everything the platform holds about the caller."""
    return await privacy.export_user(session, holders=holders, audit=audit, user_id=audit.actor_id)


@router.delete(
    "/me",
    status_code=status.HTTP_202_ACCEPTED,
    responses=responses(UserNotFound, UserErased),
    description=_ERASE_DOC,
)
async def erase_me(audit: SelfAudit, erase: EraserDep) -> ErasureAccepted:
    """Erase the caller's account and personal data everywhere."""
    return await erase(audit, audit.actor_id)


@admin_router.get(
    "/{user_id}/export",
    responses=responses(UserNotFound, UserErased, ExportUnavailable, 422),
    description=_EXPORT_DOC,
)
async def export_user(
    user_id: UUID, audit: AdminAudit, session: SessionDep, holders: HoldersDep
) -> UserExport:
    """Everything the platform holds about a user (admin only)."""
    return await privacy.export_user(session, holders=holders, audit=audit, user_id=user_id)


@admin_router.delete(
    "/{user_id}",
    status_code=status.HTTP_202_ACCEPTED,
    responses=responses(UserNotFound, UserErased, 422),
    description=_ERASE_DOC,
)
async def erase_user(user_id: UUID, audit: AdminAudit, erase: EraserDep) -> ErasureAccepted:
    """Erase a user's account and personal data everywhere (admin only)."""
    return await erase(audit, user_id)
