"""The lifespan's typed state: yielded once, read by type, gone when the lifespan ends."""

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, ClassVar

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import APIRouter, Depends, FastAPI, Request
from pydantic_settings import SettingsConfigDict
from redis.asyncio import Redis
from sqlalchemy import text

from storefront_kit.db import engine_from_settings
from storefront_kit.redis import redis_from_settings
from storefront_kit.settings import DatabaseSettingsMixin, PlatformSettings, ServiceSettings
from storefront_kit.state import ServiceState, service_state, state_dependency, state_part
from storefront_stack.pytest_plugin import create_test_database

from .demo_service import demo_app


class DemoSettings(ServiceSettings, DatabaseSettingsMixin):
    model_config = SettingsConfigDict(env_prefix="DEMO_", extra="ignore")
    service_name: ClassVar[str] = "demo"


class DemoState(ServiceState):
    settings: DemoSettings
    greeting: str


class OtherState(ServiceState):
    pass


def _app(redis_url: str) -> FastAPI:
    settings = DemoSettings(
        platform=PlatformSettings(environment="test", gc_freeze=False), redis_url=redis_url
    )
    router = APIRouter()
    StateDep = Annotated[DemoState, Depends(state_dependency(DemoState))]
    GreetingDep = Annotated[str, Depends(state_part(DemoState, lambda state: state.greeting))]

    @router.get("/greeting")
    async def greeting(state: StateDep) -> dict[str, str]:
        return {"greeting": state.greeting, "service": state.settings.service_name}

    @router.get("/part")
    async def part(greeting: GreetingDep) -> dict[str, str]:
        return {"greeting": greeting}

    @router.get("/other")
    async def other(request: Request) -> dict[str, str]:
        return {"found": type(service_state(request, OtherState)).__name__}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[DemoState]:
        redis = redis_from_settings(settings)
        try:
            yield DemoState(settings=settings, redis=redis, greeting="hello")
        finally:
            await redis.aclose()

    return demo_app(settings, router, lifespan=lifespan)


async def test_endpoints_get_the_state_the_lifespan_yielded_and_it_is_gone_after(
    redis_url: str,
) -> None:
    app = _app(redis_url)
    with pytest.raises(RuntimeError, match="not a DemoState"):
        service_state(app, DemoState)  # not started yet
    async with LifespanManager(app):
        state = service_state(app, DemoState)
        assert isinstance(state.redis, Redis)
        assert await state.redis.ping()
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://demo") as client:
            answer = await client.get("/greeting")
            part = await client.get("/part")
            wrong_type = await client.get("/other")
    assert answer.json() == {"greeting": "hello", "service": "demo"}
    assert part.json() == {"greeting": "hello"}
    # Asking for a state the app does not have is a wiring mistake: a 500, not a guess.
    assert wrong_type.status_code == 500
    with pytest.raises(RuntimeError, match="is nothing"):
        service_state(app, DemoState)  # shut down: its clients are closed


async def test_the_engine_takes_its_pool_and_session_settings_from_the_settings(
    postgres_server_url: str,
) -> None:
    url = await asyncio.to_thread(create_test_database, postgres_server_url)
    settings = DemoSettings(
        platform=PlatformSettings(environment="test"),
        database_url=url,
        db_pool_size=3,
        db_max_overflow=2,
        db_statement_timeout_ms=1234,
    )
    engine = engine_from_settings(settings)
    try:
        async with engine.connect() as connection:
            row = (
                await connection.execute(
                    text(
                        "SELECT current_setting('application_name') AS name,"
                        " current_setting('statement_timeout') AS timeout"
                    )
                )
            ).one()
    finally:
        await engine.dispose()
    assert (row.name, row.timeout) == ("demo", "1234ms")
    assert engine.pool.size() == 3  # type: ignore[attr-defined]


def test_a_subclass_is_a_frozen_keyword_only_dataclass_compared_by_identity() -> None:
    settings = DemoSettings(platform=PlatformSettings(environment="test", gc_freeze=False))
    redis = Redis()
    state = DemoState(settings=settings, redis=redis, greeting="hi")
    twin = DemoState(settings=settings, redis=redis, greeting="hi")
    assert state.greeting == "hi"
    assert state.redis_breaker is None  # the base's default, before the subclass's fields
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.greeting = "bye"  # type: ignore[misc]
    with pytest.raises(TypeError):
        DemoState(settings, redis, "hi")  # type: ignore[misc]
    assert state != twin
    assert len({state, twin}) == 2
