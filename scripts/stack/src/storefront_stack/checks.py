"""Small helpers the services' tests share: fresh phone numbers and chat ids, the check
of a problem answer, and waiting for something to become true."""

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

__all__ = ["eventually", "new_chat_id", "new_phone", "problem"]


def new_phone() -> str:
    """A fresh, possible (fictional) US number."""
    return f"+1555{secrets.randbelow(10**7):07d}"


def new_chat_id() -> int:
    """A fresh Telegram chat id (of the size real ones have)."""
    return 10**9 + secrets.randbelow(10**9)


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Assert an RFC 9457 problem with this status and code; its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert body["status"] == status
    return body


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
