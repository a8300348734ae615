"""``/internal/ws-gateway/...``: service-to-service only (auth's data export)."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends

from jwt_core_lib import TokenClaims
from storefront_kit.problems import responses
from storefront_kit.security import allow_callers
from ws_gateway_service.deps import PresenceDep
from ws_gateway_service.schemas import UserPresence

__all__ = ["router"]

router = APIRouter(prefix="/internal/ws-gateway", tags=["internal"], responses=responses(401, 403))

Auth = Annotated[TokenClaims, Depends(allow_callers("auth"))]


@router.get("/users/{user_id}/presence", responses=responses(422))
async def user_presence(user_id: UUID, _caller: Auth, presence: PresenceDep) -> UserPresence:
    """Whether the user is online now, and on how many sockets."""
    connections = await presence.connections_of(str(user_id))
    return UserPresence(online=connections > 0, connections=connections)
