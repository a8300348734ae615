"""Annotated dependency aliases: what an endpoint (HTTP or WebSocket) may ask for."""

from typing import Annotated

from fastapi import Depends
from fastapi.requests import HTTPConnection
from redis.asyncio import Redis

from storefront_kit.security import ServiceSecurity
from storefront_kit.state import state_dependency, state_part
from ws_gateway_service.service.hub import Hub
from ws_gateway_service.service.presence import Presence
from ws_gateway_service.settings import WsGatewaySettings
from ws_gateway_service.state import WsGatewayState

__all__ = ["HubDep", "PresenceDep", "RedisDep", "SecurityDep", "SettingsDep", "StateDep"]

#: Everything the ws-gateway's lifespan built, typed (storefront_kit.state).
StateDep = Annotated[WsGatewayState, Depends(state_dependency(WsGatewayState))]


async def _security(connection: HTTPConnection) -> ServiceSecurity:
    # The kit's token checks, built around the lifespan (storefront_kit.app).
    security = getattr(connection.app.state, "security", None)
    if not isinstance(security, ServiceSecurity):
        raise RuntimeError("the app's token checks are not built (is the app started?)")
    return security


SettingsDep = Annotated[
    WsGatewaySettings, Depends(state_part(WsGatewayState, lambda s: s.settings))
]
RedisDep = Annotated[Redis, Depends(state_part(WsGatewayState, lambda s: s.redis))]
HubDep = Annotated[Hub, Depends(state_part(WsGatewayState, lambda s: s.hub))]
PresenceDep = Annotated[Presence, Depends(state_part(WsGatewayState, lambda s: s.presence))]
SecurityDep = Annotated[ServiceSecurity, Depends(_security)]
