"""``/internal/ws-gateway/...``: service-to-service only (auth's data export)."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Request

from jwt_core_lib import TokenClaims
from storefront_kit.problems import responses
from storefront_kit.security import allow_callers
from ws_gateway_service.presence import Presence
from ws_gateway_service.schemas import UserPresence

__all__ = ["router"]

router = APIRouter(prefix="/internal/ws-gateway", tags=["internal"], responses=responses(401, 403))

Auth = Annotated[TokenClaims, Depends(allow_callers("auth"))]


@router.get("/users/{user_id}/presence", responses=responses(422))
async def user_presence(user_id: UUID, request: Request, _caller: Auth) -> UserPresence:
    """Whether the user is online now, and on how many sockets."""
    presence: Presence = request.app.state.presence
    connections = await presence.connections_of(str(user_id))
    return UserPresence(online=connections > 0, connections=connections)
