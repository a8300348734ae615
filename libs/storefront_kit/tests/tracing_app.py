"""A kit service with an outbox, a relay and a stream consumer, for the tracing test.

Run under uvicorn with ``TRACED_DATABASE_URL``, ``TRACED_REDIS_URL`` and (or not) an
OTLP endpoint. ``POST /things`` writes a row with its ``thing.happened`` event in the
outbox (one transaction) and calls the service's own ``GET /echo?via=aiohttp`` through
the kit's aiohttp session; the relay publishes the event to ``traced.events``; the
consumer handles it by calling ``GET /echo`` through the kit's httpx client and logging
a line. With tracing on, all of it is one trace.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, ClassVar

import httpx
from demo_service import demo_app  # this folder is uvicorn's app_dir
from fastapi import APIRouter, FastAPI, Header, Request
from pydantic_settings import SettingsConfigDict
from sqlalchemy.orm import DeclarativeBase

from storefront_kit.db import create_engine, create_sessionmaker, metadata_with_conventions
from storefront_kit.events import (
    EventEnvelope,
    OutboxMixin,
    OutboxRelay,
    StreamConsumer,
    add_outbox_event,
)
from storefront_kit.http import create_aiohttp_session
from storefront_kit.logging import get_logger
from storefront_kit.redis import create_redis
from storefront_kit.settings import DatabaseSettingsMixin, ServiceSettings

STREAM = "traced.events"
logger = get_logger("tracing_app")


class Base(DeclarativeBase):
    metadata = metadata_with_conventions()


class OutboxEvent(OutboxMixin, Base):
    __tablename__ = "outbox_event"


class TracedSettings(ServiceSettings, DatabaseSettingsMixin):
    model_config = SettingsConfigDict(env_prefix="TRACED_", extra="ignore")
    service_name: ClassVar[str] = "traced"


def create_app() -> FastAPI:
    settings = TracedSettings()
    router = APIRouter()

    @router.post("/things", status_code=202)
    async def things(request: Request) -> dict[str, str]:
        event = EventEnvelope.new(type="thing.happened", source="traced", data={"n": 1})
        async with request.app.state.sessionmaker() as session, session.begin():
            add_outbox_event(session, OutboxEvent, stream=STREAM, event=event)
        await request.app.state.redis.set("traced:last", str(event.id))
        own_url = f"http://{settings.host}:{settings.port}"
        async with request.app.state.aiohttp.get(f"{own_url}/echo?via=aiohttp") as echoed:
            echo = await echoed.json()
        return {
            "event_id": str(event.id),
            "traceparent": event.traceparent or "",
            "echoed_request_id": echo["request_id"],
        }

    @router.get("/echo")
    async def echo(x_request_id: str = Header(default="")) -> dict[str, str]:
        return {"echo": "ok", "request_id": x_request_id}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url, pool_size=2)
        async with engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)
        sessionmaker = create_sessionmaker(engine)
        redis = create_redis(settings.redis_url)
        http: httpx.AsyncClient = app.state.http_client
        own_url = f"http://{settings.host}:{settings.port}"
        app.state.sessionmaker = sessionmaker
        app.state.redis = redis
        app.state.aiohttp = create_aiohttp_session()

        async def handle(event: EventEnvelope) -> None:
            response = await http.get(f"{own_url}/echo")
            response.raise_for_status()
            logger.info("thing_handled", event_id=str(event.id))
            await redis.rpush("traced:handled", str(event.id))

        relay = OutboxRelay(sessionmaker=sessionmaker, redis=redis, model=OutboxEvent)
        consumer = StreamConsumer(
            redis=redis, stream=STREAM, group="traced", consumer="c1", handler=handle, block_ms=200
        )
        stop = asyncio.Event()
        tasks: list[asyncio.Task[Any]] = [
            asyncio.create_task(relay.run(stop)),
            asyncio.create_task(consumer.run(stop)),
        ]
        try:
            yield
        finally:
            stop.set()
            relay.notify()
            for task in tasks:
                with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(task, timeout=5)
            await app.state.aiohttp.close()
            await redis.aclose()
            await engine.dispose()

    return demo_app(settings, router, lifespan=lifespan)
