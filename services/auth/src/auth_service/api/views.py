"""How users are shown: the owner's view and the staff view."""

from auth_service.models import UserAccount
from auth_service.schemas import AdminUserOut, UserOut

__all__ = ["admin_user_out", "user_out"]


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
