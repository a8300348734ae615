"""Annotated dependency aliases: what an endpoint may ask for."""

from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis

from ws_gateway_service.settings import WsGatewaySettings

__all__ = ["RedisDep", "SettingsDep"]


async def _settings(request: Request) -> WsGatewaySettings:
    settings: WsGatewaySettings = request.app.state.settings
    return settings


async def _redis(request: Request) -> Redis:
    redis: Redis = request.app.state.redis
    return redis


SettingsDep = Annotated[WsGatewaySettings, Depends(_settings)]
RedisDep = Annotated[Redis, Depends(_redis)]
