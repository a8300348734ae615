"""Admin read of who is online."""

from fastapi import APIRouter

from storefront_kit.problems import responses
from storefront_kit.security import StaffUser
from ws_gateway_service.deps import PresenceDep
from ws_gateway_service.schemas import OnlineUsers

router = APIRouter(prefix="/api/v1/admin/presence", tags=["presence"])


@router.get("", response_model=OnlineUsers, responses=responses(401, 403))
async def online_users(_: StaffUser, presence: PresenceDep) -> OnlineUsers:
    """Users online on any replica right now (admins and moderators)."""
    users = await presence.online_users()
    return OnlineUsers(count=len(users), user_ids=users)
