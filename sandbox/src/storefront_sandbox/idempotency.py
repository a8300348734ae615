"""``Idempotency-Key`` handling shared by the payment and shipping stand-ins.

Semantics follow the common provider contract (Stripe's, the IETF draft's):

- same key, same request (method, path, JSON body compared after parsing) -> the
  stored response is replayed with ``Idempotent-Replayed: true``; nothing runs again;
- same key, different request -> 422 ``idempotency_key_reused``;
- concurrent requests with one key run one at a time (a lock per key), so 50 racing
  retries produce one side effect and 50 identical answers;
- 2xx and 4xx outcomes are stored (a decline stays a decline); 5xx outcomes, the
  injected errors and timeouts, are not, so a retry with the same key may succeed.
"""

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.responses import JSONResponse, Response

from storefront_sandbox.problems import PROBLEM_MEDIA_TYPE, ProblemError

__all__ = ["IDEMPOTENCY_HEADER", "IdempotencyStore", "fingerprint"]

IDEMPOTENCY_HEADER = "Idempotency-Key"
_MAX_KEY_LENGTH = 255


def fingerprint(method: str, path: str, body: Any) -> str:
    """A digest of what makes two requests "the same" for one key."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{method.upper()} {path}\n{canonical}".encode()).hexdigest()


@dataclass(frozen=True)
class _Stored:
    fingerprint: str
    status: int
    body: Any
    media_type: str


class IdempotencyStore:
    """Responses by idempotency key, in memory for the life of the process."""

    def __init__(self) -> None:
        self._stored: dict[str, _Stored] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def reset(self) -> None:
        """Forget every key (``POST /reset``)."""
        self._stored.clear()
        self._locks.clear()

    @staticmethod
    def require_key(value: str | None) -> str:
        """The header's value, or the problem a provider answers without one."""
        if value is None or not value.strip():
            raise ProblemError(
                400, "idempotency_key_missing", f"The {IDEMPOTENCY_HEADER} header is required."
            )
        if len(value) > _MAX_KEY_LENGTH or not value.isprintable():
            raise ProblemError(
                400,
                "idempotency_key_invalid",
                f"{IDEMPOTENCY_HEADER} must be 1-{_MAX_KEY_LENGTH} printable characters.",
            )
        return value

    async def run(
        self,
        key: str,
        request_fingerprint: str,
        action: Callable[[], Awaitable[tuple[int, Any]]],
    ) -> Response:
        """Run ``action`` once per key and answer every request with its outcome."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            stored = self._stored.get(key)
            if stored is not None:
                if stored.fingerprint != request_fingerprint:
                    raise ProblemError(
                        422,
                        "idempotency_key_reused",
                        "This Idempotency-Key was already used with a different request.",
                    )
                return JSONResponse(
                    stored.body,
                    status_code=stored.status,
                    media_type=stored.media_type,
                    headers={"Idempotent-Replayed": "true"},
                )
            try:
                status, body = await action()
            except ProblemError as exc:
                if exc.status < 500:
                    self._stored[key] = _Stored(
                        request_fingerprint, exc.status, exc.body(), PROBLEM_MEDIA_TYPE
                    )
                raise
            self._stored[key] = _Stored(request_fingerprint, status, body, "application/json")
            return JSONResponse(body, status_code=status)
