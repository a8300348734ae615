"""Small helpers the services' tests share: fresh phone numbers and chat ids, the checks
of a successful and of a problem answer, reading rows back from a service's database, and
waiting for something to become true."""

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx
from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["eventually", "new_chat_id", "new_phone", "ok", "problem", "rows"]


def new_phone() -> str:
    """A fresh, possible (fictional) US number."""
    return f"+1555{secrets.randbelow(10**7):07d}"


def new_chat_id() -> int:
    """A fresh Telegram chat id (of the size real ones have)."""
    return 10**9 + secrets.randbelow(10**9)


def ok(response: httpx.Response, status: int = 200) -> Any:
    """Assert a successful answer with this status; its JSON body."""
    assert response.status_code == status, response.text
    return response.json()


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Assert an RFC 9457 problem with this status and code; its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert body["status"] == status
    return body


async def rows(
    engine: AsyncEngine, sql: str, params: Mapping[str, Any] | None = None
) -> list[Row[Any]]:
    """The rows of one query, read on a connection of its own (what a service wrote)."""
    async with engine.connect() as connection:
        return list((await connection.execute(text(sql), dict(params or {}))).all())


async def eventually(
    check: Callable[[], Awaitable[Any]],
    *,
    timeout: float = 5.0,  # noqa: ASYNC109 (how long the test waits, not a cancellation)
    interval: float = 0.02,
) -> Any:
    """Await ``check()`` until it returns something truthy; that value."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(interval)
