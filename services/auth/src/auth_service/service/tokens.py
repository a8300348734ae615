"""Token pairs: a login starts a refresh family; each refresh rotates within it."""

from datetime import UTC, datetime, timedelta
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from auth_service import repository
from auth_service.domain.refresh import (
    RefreshVerdict,
    TokenState,
    hash_refresh_token,
    judge,
    new_refresh_token,
)
from auth_service.errors import RefreshTokenExpired, RefreshTokenInvalid, RefreshTokenReused
from auth_service.fields import phone_ref
from auth_service.models import UserAccount
from auth_service.schemas import TokenPair
from auth_service.service.keys import AccessTokens
from auth_service.settings import AuthSettings
from storefront_kit.ids import new_id
from storefront_kit.logging import get_logger

__all__ = ["logout", "refresh", "start_family"]

logger = get_logger(__name__)


async def _pair(
    *,
    session: AsyncSession,
    access_tokens: AccessTokens,
    settings: AuthSettings,
    user: UserAccount,
    family_id: UUID,
    parent_id: UUID | None,
    now: datetime,
) -> TokenPair:
    refresh_token = new_refresh_token()
    await repository.add_refresh_token(
        session,
        family_id=family_id,
        user_id=user.id,
        token_hash=hash_refresh_token(refresh_token),
        parent_id=parent_id,
        expires_at=now + timedelta(seconds=settings.refresh_token_ttl_s),
    )
    return TokenPair(
        access_token=access_tokens.issue(
            user_id=str(user.id),
            roles=list(user.roles),
            phone_ref=phone_ref(user.phone_index) if user.phone_index else None,
        ),
        refresh_token=refresh_token,
        expires_in=access_tokens.ttl_s,
    )


async def start_family(
    *,
    session: AsyncSession,
    access_tokens: AccessTokens,
    settings: AuthSettings,
    user: UserAccount,
    now: datetime | None = None,
) -> TokenPair:
    """A new login: a new refresh family and its first token."""
    return await _pair(
        session=session,
        access_tokens=access_tokens,
        settings=settings,
        user=user,
        family_id=new_id(),
        parent_id=None,
        now=now or datetime.now(UTC),
    )


async def refresh(
    *,
    session: AsyncSession,
    access_tokens: AccessTokens,
    settings: AuthSettings,
    refresh_token: str,
) -> TokenPair:
    """Spend ``refresh_token`` for a new pair; a spent one revokes its whole family."""
    now = datetime.now(UTC)
    row = await repository.lock_refresh_token(session, hash_refresh_token(refresh_token))
    if row is None:
        raise RefreshTokenInvalid("Unknown refresh token.")
    verdict = judge(
        TokenState(expires_at=row.expires_at, used_at=row.used_at, revoked_at=row.revoked_at),
        now=now,
    )
    if verdict is RefreshVerdict.REUSED:
        revoked = await repository.revoke_family(session, row.family_id, now=now)
        logger.warning(
            "refresh_token_reused",
            user_id=str(row.user_id),
            family_id=str(row.family_id),
            revoked=revoked,
        )
        raise RefreshTokenReused("This refresh token was used already; the session is revoked.")
    if verdict is RefreshVerdict.EXPIRED:
        raise RefreshTokenExpired("The refresh token has expired; log in again.")
    user = await repository.get_user(session, row.user_id)
    if user is None:  # pragma: no cover - rows cascade with their user
        raise RefreshTokenInvalid("Unknown refresh token.")
    await repository.mark_refresh_token_used(session, row.id, now=now)
    return await _pair(
        session=session,
        access_tokens=access_tokens,
        settings=settings,
        user=user,
        family_id=row.family_id,
        parent_id=row.id,
        now=now,
    )


async def logout(*, session: AsyncSession, refresh_token: str) -> bool:
    """Revoke the family of ``refresh_token``; False when the token is unknown."""
    row = await repository.lock_refresh_token(session, hash_refresh_token(refresh_token))
    if row is None:
        return False
    revoked = await repository.revoke_family(session, row.family_id, now=datetime.now(UTC))
    logger.info("logout", user_id=str(row.user_id), family_id=str(row.family_id), revoked=revoked)
    return True
