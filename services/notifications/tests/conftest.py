"""Notifications on real PostgreSQL and Redis, talking to the real auth app and the Telegram
stand-in, each served by uvicorn on a free loopback port in the test's event loop.

Each test module gets its own migrated notifications and auth databases; tests inside a
module stay apart by fresh chat ids and user ids. Redis is emptied before every test.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from auth_service import repository as auth_repository
from auth_service.app import create_app as create_auth_app
from auth_service.settings import AuthSettings
from auth_service.state import AuthState
from notifications_service.app import create_app
from notifications_service.clients.telegram import SEND_MESSAGE_HINT
from notifications_service.fields import CHAT_CONTEXT, FIELDS
from notifications_service.settings import NotificationsSettings
from notifications_service.state import NotificationsState
from storefront_kit.db import create_sessionmaker
from storefront_kit.events import EventEnvelope
from storefront_kit.redis import create_redis
from storefront_kit.state import service_state
from storefront_sandbox import telegram as telegram_sandbox
from storefront_sandbox.settings import SandboxSettings
from storefront_stack.checks import eventually as eventually
from storefront_stack.checks import new_chat_id as new_chat_id
from storefront_stack.checks import new_phone as new_phone
from storefront_stack.checks import ok
from storefront_stack.checks import problem as problem
from storefront_stack.keys import KeyRing
from storefront_stack.logins import bearer as bearer
from storefront_stack.processes import free_port
from storefront_stack.pytest_plugin import create_test_database, database_fixture
from storefront_stack.serving import RunningService, local_server, start

WEBHOOK_SECRET = "test-webhook-secret_0123456789"
BOT_TOKEN = "424242:notifications-test-token"
STREAM = "orders.events"


def pytest_configure(config: pytest.Config) -> None:
    # The bot sends through do_api_request and ignores PTB's hint to use send_message
    # (clients/telegram.py); warnings are errors here and the ini's filters go first.
    config.addinivalue_line(
        "filterwarnings", f"ignore:{SEND_MESSAGE_HINT}:telegram.warnings.PTBUserWarning"
    )


@pytest.fixture(scope="session", autouse=True)
def _ptb_timedelta() -> Iterator[None]:
    # PTB 22 warns on int time periods unless opted in; warnings are errors here.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PTB_TIMEDELTA", "true")
        yield


#: The user-token key (auth's) and the platform's service-token keys.
Keys = KeyRing


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys(service="notifications", caller="auth")


database_url = database_fixture("notifications_service")


@pytest.fixture(scope="module")
async def auth_database_url(postgres_server_url: str) -> str:
    return await asyncio.to_thread(create_test_database, postgres_server_url, "auth_service")


@asynccontextmanager
async def serving(app: Any, port: int, *, lifespan: str = "on") -> AsyncIterator[str]:
    """``app`` under a real uvicorn on ``port`` in this event loop; its base URL."""
    server = local_server(
        app, port, access_log=False, lifespan=lifespan, ws="none", timeout_graceful_shutdown=2
    )
    task = await start(server, f"uvicorn on {port}")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@dataclass
class Sandbox:
    """The Telegram stand-in and a client for its developer endpoints."""

    url: str
    client: httpx.AsyncClient

    async def messages(self, chat_id: int) -> list[dict[str, Any]]:
        return ok(await self.client.get("/messages", params={"chat_id": chat_id}))

    async def wait_messages(
        self, chat_id: int, count: int = 1, *, timeout: float = 5.0
    ) -> list[dict[str, Any]]:
        """The first ``count`` messages of the chat (waits for them)."""

        async def enough() -> list[dict[str, Any]] | None:
            listed = await self.messages(chat_id)
            return listed if len(listed) >= count else None

        listed: list[dict[str, Any]] = await eventually(enough, timeout=timeout)
        return listed

    async def faults(self, **config: Any) -> dict[str, Any]:
        return ok(await self.client.post("/faults", json=config))

    async def start(self, chat_id: int, payload: str = "") -> dict[str, Any]:
        return ok(await self.client.post("/start", json={"chat_id": chat_id, "payload": payload}))

    async def contact(self, chat_id: int, phone_number: str, **card: Any) -> dict[str, Any]:
        """The user of ``chat_id`` shares a contact: their own unless ``user_id`` is given."""
        return ok(
            await self.client.post(
                "/contact", json={"chat_id": chat_id, "phone_number": phone_number, **card}
            )
        )

    async def send(self, chat_id: int, text: str) -> dict[str, Any]:
        """The user of ``chat_id`` types ``text``."""
        return ok(await self.client.post("/send", json={"chat_id": chat_id, "text": text}))


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    app = telegram_sandbox.create_app(SandboxSettings(webhook_timeout_s=5))
    async with (
        serving(app, free_port(), lifespan="off") as url,
        httpx.AsyncClient(base_url=url, timeout=10) as client,
    ):
        yield Sandbox(url=url, client=client)


@dataclass
class AuthCalls:
    """Wraps the real auth app: counts the requests it gets by path, and can take it down.

    ``down`` makes every request answer 503 as an auth with no healthy replica would
    (the app itself is untouched); ``hold``, when given, keeps every answer the app made
    from going out until that event is set (``arrived`` is set when one is waiting).
    """

    app: Any
    paths: list[str] = field(default_factory=list)
    down: bool = False
    hold: asyncio.Event | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.paths.append(scope["path"])
            if self.hold is not None:
                send = self._held(self.hold, send)
            if self.down:
                await send({"type": "http.response.start", "status": 503, "headers": []})
                await send({"type": "http.response.body", "body": b""})
                return
        await self.app(scope, receive, send)

    def _held(self, hold: asyncio.Event, send: Any) -> Any:
        async def held(message: Any) -> None:
            if message["type"] == "http.response.start":
                self.arrived.set()  # the answer is made (from what the database said)
                await hold.wait()
            await send(message)

        return held

    def chat_lookups(self, user_id: uuid.UUID) -> int:
        """How many times notifications asked auth for this user's chat."""
        return self.paths.count(f"/internal/auth/users/{user_id}/telegram")


@dataclass
class Stack(RunningService[NotificationsState]):
    """Notifications (one or more replicas), auth and the Telegram stand-in, all running."""

    state_type = NotificationsState
    app: FastAPI
    client: httpx.AsyncClient
    url: str
    auth_app: FastAPI
    auth_url: str
    sandbox: Sandbox
    keys: Keys
    redis: Redis
    auth_calls: AuthCalls
    admin: dict[str, str] = field(default_factory=dict)

    @property
    def auth_engine(self) -> AsyncEngine:
        return service_state(self.auth_app, AuthState).engine

    async def linked_user(self, chat_id: int | None = None) -> tuple[uuid.UUID, int | None]:
        """A user in auth's database, linked to ``chat_id`` (None: unlinked)."""
        sessionmaker = create_sessionmaker(self.auth_engine)
        async with sessionmaker() as session, session.begin():
            # As auth writes it: phone and chat encrypted, found by their blind indexes.
            user, _ = await auth_repository.ensure_user(session, new_phone(), roles=["customer"])
            if chat_id is not None:
                assert await auth_repository.link_chat(
                    session, user.id, chat_id, now=datetime.now(UTC)
                )
            user_id = user.id
        return user_id, chat_id

    async def publish(self, event: EventEnvelope, *, copies: int = 1) -> EventEnvelope:
        """XADD the event to orders.events (``copies`` > 1: as a relay that published twice)."""
        for _ in range(copies):
            await self.redis.xadd(STREAM, event.to_stream_fields())  # type: ignore[arg-type]
        return event

    async def log_rows(self, event_id: uuid.UUID) -> list[dict[str, Any]]:
        async with self.engine.connect() as connection:
            rows = (
                await connection.execute(
                    text("SELECT * FROM notification_log WHERE event_id = :id ORDER BY kind"),
                    {"id": event_id},
                )
            ).all()
        found = []
        for row in rows:
            values = dict(row._mapping)
            raw = bytes(values["chat_id"])  # stored encrypted: no plaintext chat id
            values["chat_id"] = int(FIELDS.cipher.decrypt_text(raw, context=CHAT_CONTEXT))
            assert str(values["chat_id"]).encode() not in raw
            found.append(values)
        return found

    async def settled(self, *, group: str = "notifications") -> bool:
        """Every entry of the stream was delivered to the group and acknowledged."""
        groups = await self.redis.xinfo_groups(STREAM)
        last = (await self.redis.xinfo_stream(STREAM))["last-generated-id"]
        info = next((g for g in groups if g["name"] == group), None)
        return info is not None and info["pending"] == 0 and info["last-delivered-id"] == last

    def second_replica(self) -> AbstractAsyncContextManager[tuple[FastAPI, str]]:
        """Another notifications replica on the same database, Redis, auth and Telegram
        stand-in: its own consumer name in the same group, no webhook of its own."""
        settings = self.state.settings
        return running_notifications(
            notifications_settings(
                settings.database_url,
                settings.redis_url,
                auth_url=self.auth_url,
                telegram_api_url=self.sandbox.url,
            ),
            self.keys,
        )


def notifications_settings(
    database_url: str, redis_url: str, **overrides: Any
) -> NotificationsSettings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "redis_url": redis_url,
        "db_pool_timeout_s": 30.0,
        "telegram_bot_token": SecretStr(BOT_TOKEN),
        "telegram_webhook_secret": SecretStr(WEBHOOK_SECRET),
        "telegram_backoff_s": 0.01,
        "telegram_backoff_max_s": 0.05,
        "telegram_webhook_retry_s": 0.05,
        "consumer_block_ms": 50,
        "consumer_retry_delay_s": 0.05,
        "consumer_max_attempts": 3,
        "consumer_name": f"test-{uuid.uuid4().hex[:8]}",
    }
    values.update(overrides)
    return NotificationsSettings(**values)


@asynccontextmanager
async def running_notifications(
    settings: NotificationsSettings, keys: Keys, port: int | None = None
) -> AsyncIterator[tuple[FastAPI, str]]:
    app = create_app(settings)
    app.state.security = keys.security("notifications")
    async with serving(app, port or free_port()) as url:
        yield app, url


@pytest.fixture
def start_stack(
    database_url: str,
    auth_database_url: str,
    redis_url: str,
    keys: Keys,
    sandbox: Sandbox,
) -> Any:
    """``async with start_stack(**notification_setting_overrides) as stack``."""

    @asynccontextmanager
    async def start(*, wait_for_telegram: bool = True, **overrides: Any) -> AsyncIterator[Stack]:
        port, auth_port = free_port(), free_port()
        auth_settings = AuthSettings(
            database_url=auth_database_url,
            redis_url=redis_url,
            jwt_signing_key=SecretStr(keys.user_key.to_pem()),
            otp_pepper=SecretStr("test-pepper-not-a-secret"),
            notifications_url=f"http://127.0.0.1:{port}",
            otp_phone_rate_limit="1000/minute",
            otp_ip_rate_limit="1000/minute",
            db_pool_timeout_s=30.0,
        )
        auth_app = create_auth_app(auth_settings)
        auth_app.state.security = keys.security("auth")
        values: dict[str, Any] = {
            "auth_url": f"http://127.0.0.1:{auth_port}",
            "telegram_api_url": sandbox.url,
            "telegram_webhook_url": f"http://127.0.0.1:{port}/api/v1/telegram/webhook",
        }
        values.update(overrides)
        settings = notifications_settings(database_url, redis_url, **values)
        auth_calls = AuthCalls(auth_app)
        async with AsyncExitStack() as stack:
            auth_url = await stack.enter_async_context(serving(auth_calls, auth_port))
            app, url = await stack.enter_async_context(running_notifications(settings, keys, port))
            client = await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=10))
            redis = create_redis(redis_url, socket_timeout=None)
            stack.push_async_callback(redis.aclose)
            if settings.telegram_webhook_url and wait_for_telegram:
                await asyncio.wait_for(
                    service_state(app, NotificationsState).telegram.ready.wait(), timeout=10
                )
            yield Stack(
                app=app,
                client=client,
                url=url,
                auth_app=auth_app,
                auth_url=auth_url,
                sandbox=sandbox,
                keys=keys,
                redis=redis,
                auth_calls=auth_calls,
                admin=bearer(keys.user_token("admin")),
            )

    return start


@pytest.fixture
async def stack(start_stack: Any) -> AsyncIterator[Stack]:
    async with start_stack() as running:
        yield running


def order_data(user_id: uuid.UUID | str, **overrides: Any) -> dict[str, Any]:
    """``receipt()``-shaped data as orders publishes it."""
    data: dict[str, Any] = {
        "order_id": str(uuid.uuid4()),
        "user_id": str(user_id),
        "status": "PENDING",
        "lines": [
            {"sku": "MUG-1", "qty": 2, "unit_price": 1250, "currency": "EUR", "name": "Mug"},
            {"sku": "TEE-2", "qty": 1, "unit_price": 1999, "currency": "EUR", "name": "T-shirt"},
        ],
        "subtotal": 4499,
        "total": 4499,
        "currency": "EUR",
    }
    data.update(overrides)
    return data


def event(event_type: str, data: Mapping[str, Any]) -> EventEnvelope:
    return EventEnvelope.new(type=event_type, source="orders", data=data)
