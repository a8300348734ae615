"""The auth service on real PostgreSQL and Redis, with a real notifications stand-in.

Each test module gets its own migrated database; tests inside a module stay apart by
using fresh phone numbers and chat ids. Redis is emptied before every test. OTP codes
reach a small ASGI app under uvicorn on a free port that plays notifications'
``/internal/notifications/otp`` and ``/chats/forget`` (it checks the service token like
the real one).
"""

import asyncio
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from redis.asyncio import Redis
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from auth_service.app import create_app
from auth_service.fields import (
    CHAT_CONTEXT,
    FIELDS,
    PHONE_CONTEXT,
    chat_index,
    phone_index,
    phone_key,
)
from auth_service.settings import AuthSettings
from auth_service.state import AuthState
from jwt_core_lib import (
    CallerKeys,
    ServiceTokenVerifier,
    SigningKey,
    StaticKeySource,
    TokenError,
    TokenVerifier,
)
from storefront_stack.checks import new_chat_id as new_chat_id
from storefront_stack.checks import new_phone as new_phone
from storefront_stack.checks import problem as problem
from storefront_stack.keys import USER_ISSUER, KeyRing
from storefront_stack.logins import bearer as bearer
from storefront_stack.processes import free_port
from storefront_stack.pytest_plugin import database_fixture
from storefront_stack.serving import RunningService, in_process, local_server, start


class Keys(KeyRing):
    """Auth's signing key (as its settings get it) and one service-token key per service."""

    def user_verifier(self) -> TokenVerifier:
        # What the kit would build for auth; auth replaces it with its own keys.
        return TokenVerifier(
            key_source=StaticKeySource([]), issuer=USER_ISSUER, audience="storefront"
        )


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys(service="auth", caller="notifications", default_subject="user-1")


database_url = database_fixture("auth_service")


# --- the notifications stand-in ----------------------------------------------------------


@dataclass
class Notifications:
    """What the stand-in received, and knobs to make it fail."""

    url: str
    received: list[dict[str, Any]] = field(default_factory=list)
    calls: int = 0
    fail_next: int = 0
    refused: list[str] = field(default_factory=list)
    #: user ids told to ``/internal/notifications/chats/forget``, in order.
    forgotten: list[str] = field(default_factory=list)

    def reset(self) -> None:
        self.received.clear()
        self.refused.clear()
        self.forgotten.clear()
        self.calls = 0
        self.fail_next = 0

    def for_phone(self, phone: str) -> list[dict[str, Any]]:
        return [entry for entry in self.received if entry["phone"] == phone]

    async def wait_for(self, phone: str, *, count: int = 1, timeout: float = 5.0) -> dict[str, Any]:
        """The ``count``-th delivery for ``phone`` (waits for it)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.for_phone(phone)) < count:
            assert asyncio.get_running_loop().time() < deadline, (
                f"no delivery #{count} for {phone}: {self.received}"
            )
            await asyncio.sleep(0.01)
        return self.for_phone(phone)[count - 1]


def _notifications_app(state: Notifications, auth_key: SigningKey) -> Starlette:
    verifier = ServiceTokenVerifier(
        callers=CallerKeys({"auth": [auth_key.public_key]}), audience="notifications"
    )

    async def caller(request: Request) -> str | None:
        """The calling service, or None when its token is refused (which is noted)."""
        header = request.headers.get("authorization", "")
        try:
            claims = await verifier.verify(header.removeprefix("Bearer "))
        except TokenError as exc:
            state.refused.append(str(exc.detail))
            return None
        return claims.subject

    def refused() -> JSONResponse:
        return JSONResponse({"code": "invalid_token"}, status_code=401)

    async def otp(request: Request) -> JSONResponse:
        state.calls += 1
        if (subject := await caller(request)) is None:
            return refused()
        if state.fail_next > 0:
            state.fail_next -= 1
            return JSONResponse({"code": "unavailable"}, status_code=503)
        body = await request.json()
        state.received.append({**body, "caller": subject})
        return JSONResponse({"status": "queued"}, status_code=202)

    async def forget(request: Request) -> JSONResponse:
        if await caller(request) is None:
            return refused()
        state.forgotten.append((await request.json())["user_id"])
        return JSONResponse({"status": "forgotten"})

    async def export(request: Request) -> JSONResponse:
        # The notifications part of a data export (test_privacy.py).
        if await caller(request) is None:
            return refused()
        user_id = request.path_params["user_id"]
        return JSONResponse(
            {
                "cached_chat_id": None,
                "messages": [
                    {
                        "id": str(uuid.uuid4()),
                        "event_id": str(uuid.uuid4()),
                        "event_type": "order.confirmed",
                        "kind": "receipt",
                        "status": "sent",
                        "chat_id": int(uuid.UUID(user_id).int % 10**9),
                        "attempts": 1,
                        "sent_at": "2026-12-07T10:00:00Z",
                        "created_at": "2026-12-07T10:00:00Z",
                    }
                ],
            }
        )

    return Starlette(
        routes=[
            Route("/internal/notifications/otp", otp, methods=["POST"]),
            Route("/internal/notifications/chats/forget", forget, methods=["POST"]),
            Route("/internal/notifications/users/{user_id}/export", export, methods=["GET"]),
        ]
    )


@pytest.fixture(scope="session")
async def notifications_server(keys: Keys) -> AsyncIterator[Notifications]:
    port = free_port()
    state = Notifications(url=f"http://127.0.0.1:{port}")
    server = local_server(
        _notifications_app(state, keys.services["auth"]),
        port,
        access_log=False,
        lifespan="off",
        ws="none",
    )
    serving = await start(server, "the notifications stand-in")
    yield state
    server.should_exit = True
    await serving


@pytest.fixture
def notifications(notifications_server: Notifications) -> Notifications:
    notifications_server.reset()
    return notifications_server


# --- the auth app --------------------------------------------------------------------------


def link_token(link: str) -> str:
    parsed = urlparse(link)
    assert parsed.scheme == "https"
    assert parsed.netloc == "t.me"
    return parse_qs(parsed.query)["start"][0]


@dataclass
class Auth(RunningService[AuthState]):
    """A running auth app, a client, and helpers for the common calls."""

    state_type = AuthState
    app: FastAPI
    client: httpx.AsyncClient
    keys: Keys
    notifications: Notifications

    @property
    def redis(self) -> Redis:
        return self.state.redis

    @property
    def settings(self) -> AuthSettings:
        return self.state.settings

    async def send(self, phone: str, *, ip: str | None = None) -> httpx.Response:
        headers = {"X-Real-IP": ip} if ip else {}
        return await self.client.post(
            "/api/v1/auth/otp/send", json={"phone": phone}, headers=headers
        )

    async def verify(self, phone: str, code: str) -> httpx.Response:
        return await self.client.post(
            "/api/v1/auth/otp/verify", json={"phone": phone, "code": code}
        )

    async def start(
        self, token: str, chat_id: int, *, caller: str = "notifications"
    ) -> httpx.Response:
        return await self.client.post(
            "/internal/auth/telegram/start",
            json={"token": token, "chat_id": chat_id},
            headers=bearer(self.keys.service_token(caller)),
        )

    async def contact(
        self,
        chat_id: int,
        phone_number: str | None,
        *,
        user_id: int | str | None = "own",
        sender_id: int | None = None,
        caller: str = "notifications",
    ) -> httpx.Response:
        """What the bot reports of a reply in ``chat_id``: a shared contact (the sender's own
        unless ``user_id`` says whose card), or typed text (``phone_number=None``)."""
        contact: dict[str, Any] | None = None
        if phone_number is not None:
            contact = {"phone_number": phone_number}
            card = chat_id if user_id == "own" else user_id
            if card is not None:
                contact["user_id"] = card
        return await self.client.post(
            "/internal/auth/telegram/contact",
            json={
                "chat_id": chat_id,
                "sender_id": chat_id if sender_id is None else sender_id,
                "contact": contact,
            },
            headers=bearer(self.keys.service_token(caller)),
        )

    async def prove(self, token: str, chat_id: int, phone: str) -> None:
        """Start on the link in ``chat_id``, then share that chat's own contact for ``phone``."""
        started = await self.start(token, chat_id)
        assert started.json() == {"outcome": "contact_requested"}, started.text
        shared = await self.contact(chat_id, phone.removeprefix("+"))
        assert shared.json() == {"outcome": "code_sent", "attempts_left": None}, shared.text

    async def allow_resend(self, phone: str) -> None:
        """Skip the resend cooldown (tests do not wait 30 s)."""
        await self.redis.delete(f"auth:otp:cooldown:{phone_key(phone)}")

    async def login(self, phone: str, chat_id: int) -> dict[str, Any]:
        """The whole flow: send, then (unless ``chat_id`` is linked already) Start in it and
        share its own contact, then verify."""
        before = len(self.notifications.for_phone(phone))
        user = await self.user_row(phone)
        sent = await self.send(phone)
        assert sent.status_code == 202, sent.text
        if user is None or user["telegram_chat_id"] != chat_id:
            await self.prove(link_token(sent.json()["telegram_link"]), chat_id, phone)
        delivered = await self.notifications.wait_for(phone, count=before + 1)
        assert delivered["chat_id"] == chat_id
        verified = await self.verify(phone, delivered["code"])
        assert verified.status_code == 200, verified.text
        tokens: dict[str, Any] = verified.json()
        return tokens

    async def scalar(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        """Straight from the database (not through the code under test)."""
        async with self.engine.connect() as connection:
            return (await connection.execute(text(sql), dict(params or {}))).scalar()

    async def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """A committed change straight in the database (setting up a situation)."""
        async with self.engine.begin() as connection:
            await connection.execute(text(sql), dict(params or {}))

    async def user_row(self, phone: str) -> dict[str, Any] | None:
        """The user's row found by its phone's blind index, phone and chat id decrypted."""
        async with self.engine.connect() as connection:
            row = (
                await connection.execute(
                    text("SELECT * FROM user_account WHERE phone_index = :digest"),
                    {"digest": phone_index(phone)},
                )
            ).first()
        if row is None:
            return None
        values = dict(row._mapping)
        cipher = FIELDS.cipher
        values["phone"] = cipher.decrypt_text(values["phone"], context=PHONE_CONTEXT)
        if values["telegram_chat_id"] is not None:
            values["telegram_chat_id"] = int(
                cipher.decrypt_text(values["telegram_chat_id"], context=CHAT_CONTEXT)
            )
        return values

    async def insert_user(
        self,
        phone: str,
        *,
        roles: Sequence[str] = ("customer",),
        chat_id: int | None = None,
        user_id: uuid.UUID | None = None,
    ) -> None:
        """A user written straight in the database, encrypted as the service writes it."""
        cipher = FIELDS.cipher
        await self.execute(
            "INSERT INTO user_account (id, phone, phone_index, roles, telegram_chat_id,"
            " telegram_chat_index, telegram_linked_at) VALUES (:id, :p, :pi,"
            " CAST(:roles AS varchar[]), :c, :ci, CASE WHEN :linked THEN now() END)",
            {
                "id": user_id or uuid.uuid4(),
                "p": cipher.encrypt_text(phone, context=PHONE_CONTEXT),
                "pi": phone_index(phone),
                "roles": list(roles),
                "c": None
                if chat_id is None
                else cipher.encrypt_text(str(chat_id), context=CHAT_CONTEXT),
                "ci": None if chat_id is None else chat_index(chat_id),
                "linked": chat_id is not None,
            },
        )


async def login_as(auth: Auth, *roles: str) -> tuple[dict[str, str], dict[str, Any]]:
    """A real user (given ``roles`` in the database, then refreshed), logged in; (headers, row)."""
    phone = new_phone()
    tokens = await auth.login(phone, new_chat_id())
    if roles:
        await auth.execute(
            "UPDATE user_account SET roles = CAST(:roles AS varchar[]) WHERE phone_index = :p",
            {"roles": list(roles), "p": phone_index(phone)},
        )
        refreshed = await auth.client.post(
            "/api/v1/auth/token/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        tokens = refreshed.json()
    row = await auth.user_row(phone)
    assert row is not None
    return bearer(tokens["access_token"]), row


def settings_for(
    database_url: str, redis_url: str, keys: Keys, notifications_url: str, **overrides: Any
) -> AuthSettings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "redis_url": redis_url,
        "jwt_signing_key": SecretStr(keys.user_key.to_pem()),
        "otp_pepper": SecretStr("test-pepper-not-a-secret"),
        "notifications_url": notifications_url,
        "notifications_timeout_s": 1.0,
        "otp_phone_rate_limit": "1000/minute",
        "otp_ip_rate_limit": "1000/minute",
        "db_pool_timeout_s": 30.0,
    }
    values.update(overrides)
    return AuthSettings(**values)


@asynccontextmanager
async def running(
    settings: AuthSettings, keys: Keys, notifications: Notifications
) -> AsyncIterator[Auth]:
    app = create_app(settings)
    app.state.security = keys.security()
    async with in_process(app, "http://auth") as client:
        yield Auth(app=app, client=client, keys=keys, notifications=notifications)


@pytest.fixture
async def auth(
    database_url: str, redis_url: str, keys: Keys, notifications: Notifications
) -> AsyncIterator[Auth]:
    settings = settings_for(database_url, redis_url, keys, notifications.url)
    async with running(settings, keys, notifications) as running_auth:
        yield running_auth


@pytest.fixture
def start_auth(database_url: str, redis_url: str, keys: Keys, notifications: Notifications) -> Any:
    """``start_auth(**setting_overrides)``: an app with custom settings (a context manager)."""

    def start(**overrides: Any) -> Any:
        url = overrides.pop("notifications_url", notifications.url)
        return running(
            settings_for(database_url, redis_url, keys, url, **overrides), keys, notifications
        )

    return start
