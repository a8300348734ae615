"""Calls to the notifications service, off the request path.

``/otp/send`` answers 202 before notifications is even called: each delivery runs as a
background task with a short timeout and a bounded number of retries, and a
notifications outage is logged, never surfaced to the client. Notifications itself
retries towards Telegram (docs/design.md §4: ``/internal/notifications/otp`` is 202, async).

A changed Telegram link is announced the same way, once its transaction committed
(``/internal/notifications/chats/forget``): notifications caches each user's chat and
drops it on this call. A call that fails for good leaves the old answer cached until
its TTL (``NOTIFICATIONS_CHAT_CACHE_TTL_S``) runs out.
"""

import asyncio
from typing import Any
from uuid import UUID

import httpx

from storefront_kit.logging import get_logger
from storefront_kit.tasks import TaskSet

__all__ = ["OtpDelivery"]

logger = get_logger(__name__)

_RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class OtpDelivery:
    """Fire-and-forget calls to notifications with retries: OTPs and chat link changes."""

    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        auth: httpx.Auth,
        base_url: str,
        timeout_s: float,
        max_attempts: int,
        backoff_s: float = 0.2,
    ) -> None:
        self._client = client
        self._auth = auth
        self._url = f"{base_url}/internal/notifications/otp"
        self._forget_url = f"{base_url}/internal/notifications/chats/forget"
        self._timeout = timeout_s
        self._max_attempts = max_attempts
        self._backoff_s = backoff_s
        self._tasks = TaskSet()

    def schedule(self, *, phone: str, code: str, chat_id: int) -> asyncio.Task[bool]:
        """Start delivering ``code`` to ``chat_id`` in the background."""
        return self._tasks.spawn(
            self._deliver({"phone": phone, "code": code, "chat_id": chat_id}),
            name="auth-otp-delivery",
        )

    def forget_chat(self, user_id: UUID) -> asyncio.Task[bool]:
        """Tell notifications (in the background) that the user's Telegram link changed.

        Call it only once the change is committed (``after_commit``): told earlier,
        notifications could ask again and cache the old link.
        """
        return self._tasks.spawn(self._forget(str(user_id)), name="auth-chat-forget")

    async def _post(self, url: str, body: dict[str, Any]) -> tuple[bool, str, int]:
        """POST with bounded retries: (handed over, last outcome, attempts made)."""
        outcome = "not_tried"
        attempt = 0
        for attempt in range(1, self._max_attempts + 1):
            try:
                response = await self._client.post(
                    url, json=body, auth=self._auth, timeout=self._timeout
                )
            except httpx.HTTPError as exc:
                outcome = type(exc).__name__
            else:
                if response.is_success:
                    return True, "ok", attempt
                outcome = f"http_{response.status_code}"
                if response.status_code not in _RETRYABLE_STATUS:
                    break
            if attempt < self._max_attempts:
                await asyncio.sleep(self._backoff_s * 2 ** (attempt - 1))
        return False, outcome, attempt

    async def _deliver(self, body: dict[str, Any]) -> bool:
        chat_id = body["chat_id"]
        done, outcome, attempt = await self._post(self._url, body)
        if done:
            logger.info("otp_handed_to_notifications", chat_id=chat_id, attempt=attempt)
            return True
        # The code itself is never logged.
        logger.warning("otp_delivery_failed", chat_id=chat_id, outcome=outcome, attempts=attempt)
        return False

    async def _forget(self, user_id: str) -> bool:
        done, outcome, attempt = await self._post(self._forget_url, {"user_id": user_id})
        if done:
            logger.info("chat_link_change_told", user_id=user_id, attempt=attempt)
            return True
        # Notifications keeps the old chat until its cache TTL runs out.
        logger.warning(
            "chat_link_change_not_told", user_id=user_id, outcome=outcome, attempts=attempt
        )
        return False

    async def aclose(self, timeout_s: float = 3.0) -> None:
        """Let deliveries in flight finish for a moment, then cancel the rest."""
        await self._tasks.aclose(timeout_s)
