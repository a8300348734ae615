"""``/api/v1/admin/users``: staff list and read users; admins change roles."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query

from auth_service.deps import AdminAudit, SessionDep, StaffUser, UserPaging
from auth_service.domain.roles import Role
from auth_service.errors import OwnAdminRole, PhoneNotProven, UnknownRole, UserNotFound
from auth_service.schemas import AdminUserOut, RolesUpdate, UserPage, admin_user_out
from auth_service.service import users
from storefront_kit.problems import responses

__all__ = ["router"]

router = APIRouter(
    prefix="/api/v1/admin/users", tags=["admin: users"], responses=responses(401, 403)
)


@router.get("", responses=responses(UnknownRole, 422))
async def list_users(
    _staff: StaffUser,
    session: SessionDep,
    paging: UserPaging,
    role: Role | None = None,
    phone: Annotated[
        str | None,
        Query(
            pattern=r"^\+[0-9]{1,15}$",
            description=(
                "A whole E.164 number, e.g. +15550000001 (phones are stored encrypted: "
                "no prefix search)."
            ),
        ),
    ] = None,
) -> UserPage:
    """Users, newest first; filter by role and/or phone number."""
    rows, total = await users.list_users(
        session, role=role, phone=phone, page=paging.page, size=paging.size
    )
    return UserPage(
        items=[admin_user_out(u) for u in rows], total=total, page=paging.page, size=paging.size
    )


@router.get("/{user_id}", responses=responses(UserNotFound))
async def get_user(user_id: UUID, _staff: StaffUser, session: SessionDep) -> AdminUserOut:
    """One user."""
    return admin_user_out(await users.get_user(session, user_id))


@router.put(
    "/{user_id}/roles", responses=responses(UserNotFound, OwnAdminRole, PhoneNotProven, 422)
)
async def put_roles(
    user_id: UUID, body: RolesUpdate, audit: AdminAudit, session: SessionDep
) -> AdminUserOut:
    """Replace a user's roles (admin only, audited); takes effect at the user's next refresh.

    A staff role goes only to a user whose phone a linked Telegram chat has proven (409).
    """
    user = await users.set_roles(session, audit=audit, user_id=user_id, roles=list(body.roles))
    return admin_user_out(user)
