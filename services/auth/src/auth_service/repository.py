"""Every query of the auth service (SQLAlchemy 2.0, async). Nothing here commits.

Phones and chat ids are stored encrypted: they are found through their blind indexes
(:func:`~auth_service.fields.phone_index`), never compared as columns.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.fields import chat_index, phone_index
from auth_service.models import AuditEntry, RefreshToken, UserAccount
from storefront_kit.audit import AuditEntry as AuditRecord
from storefront_kit.ids import new_id

__all__ = [
    "AuditFilter",
    "UserFilter",
    "add_audit_entry",
    "add_refresh_token",
    "ensure_user",
    "erase_account",
    "get_account",
    "get_user",
    "get_user_by_chat",
    "get_user_by_phone",
    "link_chat",
    "list_audit_entries",
    "list_refresh_tokens",
    "list_users",
    "lock_refresh_token",
    "mark_refresh_token_used",
    "record_login",
    "revoke_family",
    "set_roles",
    "unlink_chat",
    "update_profile",
]


async def get_user(session: AsyncSession, user_id: UUID) -> UserAccount | None:
    """The user with this id (``None`` for an erased one)."""
    user = await session.get(UserAccount, user_id, populate_existing=True)
    if user is None or user.erased_at is not None:
        return None
    return user


async def get_account(
    session: AsyncSession, user_id: UUID, *, for_update: bool = False
) -> UserAccount | None:
    """The account with this id, erased or not (locked with ``for_update``)."""
    query = (
        select(UserAccount)
        .where(UserAccount.id == user_id)
        .execution_options(populate_existing=True)
    )
    if for_update:
        query = query.with_for_update()
    return await session.scalar(query)


async def list_refresh_tokens(session: AsyncSession, user_id: UUID) -> Sequence[RefreshToken]:
    """Every refresh token the user has (the sessions of their logins), oldest first."""
    rows = await session.scalars(
        select(RefreshToken)
        .where(RefreshToken.user_id == user_id)
        .order_by(RefreshToken.created_at, RefreshToken.id)
    )
    return rows.all()


async def erase_account(session: AsyncSession, user_id: UUID, *, now: datetime) -> int:
    """Delete the user's refresh tokens and clear every personal field; tokens deleted.

    The row stays (``erased_at``): its id can never log in again, nor be erased twice.
    """
    deleted = await session.execute(delete(RefreshToken).where(RefreshToken.user_id == user_id))
    await session.execute(
        update(UserAccount)
        .where(UserAccount.id == user_id)
        .values(
            phone=None,
            phone_index=None,
            telegram_chat_id=None,
            telegram_chat_index=None,
            telegram_linked_at=None,
            display_name=None,
            email=None,
            locale=None,
            last_login_at=None,
            roles=[],
            erased_at=now,
            updated_at=now,
        )
    )
    return int(getattr(deleted, "rowcount", 0) or 0)


async def get_user_by_phone(session: AsyncSession, phone: str) -> UserAccount | None:
    """The user with this (E.164) phone."""
    return await session.scalar(
        select(UserAccount).where(UserAccount.phone_index == phone_index(phone))
    )


async def get_user_by_chat(session: AsyncSession, chat_id: int) -> UserAccount | None:
    """The user whose FINAL Telegram link is this chat."""
    return await session.scalar(
        select(UserAccount).where(UserAccount.telegram_chat_index == chat_index(chat_id))
    )


async def ensure_user(
    session: AsyncSession, phone: str, *, roles: Sequence[str]
) -> tuple[UserAccount, bool]:
    """The user of ``phone``, created with ``roles`` when new; ``(user, created)``.

    ``INSERT ... ON CONFLICT DO NOTHING`` makes two first logins of one phone at the
    same moment end up with one user.
    """
    digest = phone_index(phone)
    inserted = await session.scalar(
        insert(UserAccount)
        .values(id=new_id(), phone=phone, phone_index=digest, roles=list(roles))
        .on_conflict_do_nothing(index_elements=[UserAccount.phone_index])
        .returning(UserAccount.id)
    )
    user = await session.scalar(
        select(UserAccount)
        .where(UserAccount.phone_index == digest)
        .execution_options(populate_existing=True)
    )
    assert user is not None
    return user, inserted is not None


async def link_chat(
    session: AsyncSession, user_id: UUID, chat_id: int, *, now: datetime, replace: bool = False
) -> bool:
    """Make ``chat_id`` the user's FINAL chat unless another user holds it.

    Without ``replace`` a user who already has a chat keeps it. The unique constraint
    decides races; the savepoint keeps the request's transaction usable when it does.
    """
    condition: list[ColumnElement[bool]] = [UserAccount.id == user_id]
    if not replace:
        condition.append(UserAccount.telegram_chat_id.is_(None))
    try:
        async with session.begin_nested():
            result = await session.execute(
                update(UserAccount)
                .where(*condition)
                .values(
                    telegram_chat_id=chat_id,
                    telegram_chat_index=chat_index(chat_id),
                    telegram_linked_at=now,
                    updated_at=now,
                )
                .returning(UserAccount.id)
                .execution_options(synchronize_session=False)
            )
            return result.first() is not None
    except IntegrityError:
        return False


async def unlink_chat(session: AsyncSession, user_id: UUID, chat_id: int, *, now: datetime) -> None:
    """Take ``chat_id`` away from the user (only if it is still theirs)."""
    await session.execute(
        update(UserAccount)
        .where(UserAccount.id == user_id, UserAccount.telegram_chat_index == chat_index(chat_id))
        .values(
            telegram_chat_id=None, telegram_chat_index=None, telegram_linked_at=None, updated_at=now
        )
        .execution_options(synchronize_session=False)
    )


async def record_login(session: AsyncSession, user_id: UUID, *, now: datetime) -> None:
    """Remember when the user last logged in."""
    await session.execute(
        update(UserAccount)
        .where(UserAccount.id == user_id)
        .values(last_login_at=now)
        .execution_options(synchronize_session=False)
    )


async def update_profile(
    session: AsyncSession, user_id: UUID, values: Mapping[str, Any], *, now: datetime
) -> UserAccount | None:
    """Apply profile changes; the updated user (None when there is no such user)."""
    return await session.scalar(
        update(UserAccount)
        .where(UserAccount.id == user_id)
        .values(**values, updated_at=now)
        .returning(UserAccount)
        .execution_options(populate_existing=True, synchronize_session=False)
    )


async def set_roles(
    session: AsyncSession, user_id: UUID, roles: Sequence[str], *, now: datetime
) -> UserAccount | None:
    """Replace the user's roles; the updated user (None when there is no such user)."""
    return await update_profile(session, user_id, {"roles": list(roles)}, now=now)


@dataclass(frozen=True)
class UserFilter:
    """Admin list filters: a role the user holds, and/or a phone number.

    The phone matches whole numbers only: it is stored encrypted, and a blind index
    answers equality, not prefixes.
    """

    role: str | None = None
    phone: str | None = None


async def list_users(
    session: AsyncSession, filters: UserFilter, *, offset: int, limit: int
) -> tuple[list[UserAccount], int]:
    """One page of users, newest first, and how many match in total."""
    conditions: list[ColumnElement[bool]] = [UserAccount.erased_at.is_(None)]
    if filters.role:
        conditions.append(UserAccount.roles.contains([filters.role]))
    if filters.phone:
        conditions.append(UserAccount.phone_index == phone_index(filters.phone))
    total = await session.scalar(select(func.count()).select_from(UserAccount).where(*conditions))
    rows = await session.scalars(
        select(UserAccount)
        .where(*conditions)
        .order_by(UserAccount.created_at.desc(), UserAccount.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return list(rows), int(total or 0)


async def add_refresh_token(
    session: AsyncSession,
    *,
    family_id: UUID,
    user_id: UUID,
    token_hash: str,
    expires_at: datetime,
    parent_id: UUID | None = None,
) -> RefreshToken:
    """Store a new refresh token (its hash) in a family."""
    row = RefreshToken(
        id=new_id(),
        family_id=family_id,
        user_id=user_id,
        token_hash=token_hash,
        parent_id=parent_id,
        expires_at=expires_at,
    )
    session.add(row)
    await session.flush()
    return row


async def lock_refresh_token(session: AsyncSession, token_hash: str) -> RefreshToken | None:
    """The token row, locked until the transaction ends (``SELECT ... FOR UPDATE``).

    A second refresh of the same token waits here and then sees it spent.
    """
    return await session.scalar(
        select(RefreshToken)
        .where(RefreshToken.token_hash == token_hash)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def mark_refresh_token_used(session: AsyncSession, token_id: UUID, *, now: datetime) -> None:
    """Spend a refresh token (rotation)."""
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == token_id)
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )


async def revoke_family(session: AsyncSession, family_id: UUID, *, now: datetime) -> int:
    """Revoke every token of a family that is not revoked yet; how many were."""
    result = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .returning(RefreshToken.id)
        .execution_options(synchronize_session=False)
    )
    return len(result.all())


async def add_audit_entry(session: AsyncSession, entry: AuditRecord) -> bool:
    """Store ``entry`` unless an entry with its id is stored already; True if stored."""
    inserted = await session.scalar(
        insert(AuditEntry)
        .values(**entry.model_dump())
        .on_conflict_do_nothing(index_elements=[AuditEntry.id])
        .returning(AuditEntry.id)
    )
    return inserted is not None


@dataclass(frozen=True)
class AuditFilter:
    """What the audit log is filtered by (every field optional, all must match)."""

    actor_id: str | None = None
    action: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    service: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def clauses(self) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = []
        for column, value in (
            (AuditEntry.actor_id, self.actor_id),
            (AuditEntry.action, self.action),
            (AuditEntry.target_type, self.target_type),
            (AuditEntry.target_id, self.target_id),
            (AuditEntry.service, self.service),
        ):
            if value is not None:
                conditions.append(column == value)
        if self.since is not None:
            conditions.append(AuditEntry.occurred_at >= self.since)
        if self.until is not None:
            conditions.append(AuditEntry.occurred_at < self.until)
        return conditions


async def list_audit_entries(
    session: AsyncSession, filters: AuditFilter, *, before: UUID | None, limit: int
) -> list[AuditEntry]:
    """Newest first (by id, a UUIDv7: time order), those older than ``before`` (keyset)."""
    conditions = filters.clauses()
    if before is not None:
        conditions.append(AuditEntry.id < before)
    rows = await session.scalars(
        select(AuditEntry).where(*conditions).order_by(AuditEntry.id.desc()).limit(limit)
    )
    return list(rows)
