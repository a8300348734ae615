"""HTTP and WebSocket routers of the ws-gateway service."""

from fastapi import APIRouter

from ws_gateway_service.api import internal, presence, ws

__all__ = ["routers"]

routers: list[APIRouter] = [ws.router, presence.router, internal.router]
