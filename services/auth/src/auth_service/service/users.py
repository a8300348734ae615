"""Users: own profile, staff views, role changes, and the admin the CLI and seed create."""

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from auth_service import repository
from auth_service.domain import roles as role_rules
from auth_service.domain.phones import InvalidPhoneNumber, normalise_phone
from auth_service.errors import (
    Conflict,
    InvalidPhone,
    OwnAdminRole,
    PhoneNotProven,
    UnknownRole,
    UserNotFound,
)
from auth_service.models import UserAccount
from auth_service.repository import UserFilter
from auth_service.service import audit as audit_log
from storefront_kit.audit import AuditContext
from storefront_kit.logging import get_logger

__all__ = [
    "AdminAccount",
    "ChatTaken",
    "chat_of",
    "ensure_staff",
    "get_user",
    "link_proven_chat",
    "list_users",
    "set_roles",
    "update_profile",
    "user_id_of",
]

logger = get_logger(__name__)

_PROFILE_FIELDS = frozenset({"display_name", "email", "locale"})


class ChatTaken(Conflict):
    code = "chat_taken"
    title = "The Telegram chat is linked to another user"


def user_id_of(text: str | UUID) -> UUID:
    """``text`` as a user id; not one is a user that does not exist (404)."""
    if isinstance(text, UUID):
        return text
    try:
        return UUID(text)
    except ValueError:
        raise UserNotFound() from None


async def get_user(session: AsyncSession, user_id: str | UUID) -> UserAccount:
    """The user, or :class:`UserNotFound`."""
    user = await repository.get_user(session, user_id_of(user_id))
    if user is None:
        raise UserNotFound()
    return user


async def update_profile(
    session: AsyncSession, user_id: str | UUID, changes: Mapping[str, Any]
) -> UserAccount:
    """Apply the given profile fields (``None`` clears one)."""
    values = {key: value for key, value in changes.items() if key in _PROFILE_FIELDS}
    uid = user_id_of(user_id)
    if not values:
        return await get_user(session, uid)
    user = await repository.update_profile(session, uid, values, now=datetime.now(UTC))
    if user is None:
        raise UserNotFound()
    return user


async def list_users(
    session: AsyncSession, *, role: str | None, phone: str | None, page: int, size: int
) -> tuple[list[UserAccount], int]:
    """One page of users for staff, filtered by role and/or (whole E.164) phone number."""
    if role is not None and role not in role_rules.KNOWN_ROLES:
        raise UnknownRole(f"Unknown role {role!r}.")
    return await repository.list_users(
        session,
        UserFilter(role=role, phone=phone),
        offset=(page - 1) * size,
        limit=size,
    )


async def set_roles(
    session: AsyncSession, *, audit: AuditContext, user_id: UUID, roles: Sequence[str]
) -> UserAccount:
    """Replace a user's roles; an admin cannot take away their own admin role.

    A change is audited (``user.roles_changed``) in the same transaction; setting the
    roles the user has already changes and records nothing.
    """
    actor_id = audit.actor_id
    try:
        wanted = role_rules.normalise(roles)
    except ValueError as exc:
        raise UnknownRole(str(exc)) from None
    if str(user_id) == actor_id and role_rules.ADMIN not in wanted:
        raise OwnAdminRole("You cannot remove your own admin role.")
    current = await get_user(session, user_id)
    granted = role_rules.STAFF_ROLES.intersection(wanted).difference(current.roles)
    if granted and current.telegram_chat_id is None:
        # A staff account whose phone no chat has proven could be claimed by whoever
        # proves it first; staff roles go only to users who already did.
        raise PhoneNotProven(
            f"Granting {', '.join(sorted(granted))} needs a user whose phone is proven by a "
            "linked Telegram chat: let them log in through Telegram first."
        )
    before = list(current.roles)
    if set(before) == set(wanted):
        return current
    user = await repository.set_roles(session, user_id, wanted, now=datetime.now(UTC))
    if user is None:
        raise UserNotFound()
    await audit_log.record(
        session,
        audit.entry(
            action="user.roles_changed",
            target_type="user",
            target_id=user_id,
            before={"roles": before},
            after={"roles": list(user.roles)},
        ),
    )
    logger.info("roles_changed", user_id=str(user_id), roles=wanted, by=actor_id)
    return user


async def chat_of(session: AsyncSession, user_id: UUID) -> int | None:
    """The user's FINAL Telegram chat (:class:`UserNotFound` for an unknown user)."""
    return (await get_user(session, user_id)).telegram_chat_id


async def link_proven_chat(
    session: AsyncSession,
    *,
    user: UserAccount,
    chat_id: int,
    now: datetime,
    on_change: Callable[[UUID], None] | None = None,
) -> bool:
    """Make ``chat_id`` (which proved the user's phone) the user's FINAL chat.

    A customer who held the chat loses it: that Telegram account now proves another
    number. A staff account neither loses its chat nor gets a new one this way (staff
    chats are set by operators, ``create-admin``); False when nothing was linked.
    ``on_change`` is called with every user whose link changed (the previous holder,
    the user), for the caller to tell notifications once this commits.
    """
    changed = on_change or (lambda _user_id: None)
    if user.telegram_chat_id == chat_id:
        return True
    if role_rules.is_staff(user.roles) and user.telegram_chat_id is not None:
        return False
    holder = await repository.get_user_by_chat(session, chat_id)
    if holder is not None and holder.id != user.id:
        if role_rules.is_staff(holder.roles):
            return False
        await repository.unlink_chat(session, holder.id, chat_id, now=now)
        changed(holder.id)
        logger.info("telegram_chat_moved", chat_id=chat_id, from_user=str(holder.id))
    linked = await repository.link_chat(session, user.id, chat_id, now=now, replace=True)
    if linked:
        changed(user.id)
    return linked


class AdminAccount:
    """What :func:`ensure_admin` did."""

    def __init__(self, user: UserAccount, *, created: bool) -> None:
        self.user = user
        self.created = created


async def ensure_staff(
    session: AsyncSession, *, phone: str, chat_id: int, role: str = role_rules.ADMIN
) -> AdminAccount:
    """Create or update the user of ``phone`` with a staff ``role``, linked to ``chat_id``.

    The chat is required: a staff account without one could be claimed by the first chat
    to prove its phone. Idempotent: running it again changes nothing. A chat that belongs
    to another user is refused (:class:`ChatTaken`), never moved.
    """
    if role not in role_rules.STAFF_ROLES:
        raise UnknownRole(f"{role!r} is not a staff role.")
    try:
        e164 = normalise_phone(phone)
    except InvalidPhoneNumber as exc:
        raise InvalidPhone(f"Not a valid international phone number: {exc}.") from None
    now = datetime.now(UTC)
    user, created = await repository.ensure_user(
        session, e164, roles=role_rules.normalise([role, role_rules.CUSTOMER])
    )
    if role not in user.roles:
        updated = await repository.set_roles(
            session, user.id, role_rules.normalise([*user.roles, role]), now=now
        )
        assert updated is not None
        user = updated
    if user.telegram_chat_id != chat_id:
        holder = await repository.get_user_by_chat(session, chat_id)
        if holder is not None and holder.id != user.id:
            raise ChatTaken(f"Chat {chat_id} is linked to another user.")
        if not await repository.link_chat(session, user.id, chat_id, now=now, replace=True):
            raise ChatTaken(f"Chat {chat_id} is linked to another user.")
        user = await get_user(session, user.id)
    return AdminAccount(user, created=created)
