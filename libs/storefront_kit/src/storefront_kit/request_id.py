"""Correlation ids: accepted or generated at the edge, kept in a contextvar, passed on.

The id lives in a :class:`contextvars.ContextVar`, so logging and outgoing HTTP calls
read it without it being threaded through every function.
"""

import re
import uuid
from contextvars import ContextVar

import httpx
import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "REQUEST_ID_HEADER",
    "RequestIdMiddleware",
    "current_request_id",
    "propagate_request_id",
    "request_id_var",
]

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,128}$")

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)


def current_request_id() -> str | None:
    """The request id of the request or event being handled, if any."""
    return request_id_var.get()


def _accept_or_generate(value: str | None) -> str:
    if value and _VALID_REQUEST_ID.match(value):
        return value
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Pure ASGI middleware: binds ``X-Request-ID`` for the request and echoes it back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._header = REQUEST_ID_HEADER.lower().encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope.get("headers", []):
            if name == self._header:
                incoming = value.decode("latin-1")
                break
        request_id = _accept_or_generate(incoming)
        token = request_id_var.set(request_id)
        structlog.contextvars.bind_contextvars(request_id=request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k != self._header]
                headers.append((self._header, request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            # A socket's frames pass untouched: only an HTTP response carries the header,
            # and a wrapper here would be one more call for each of the many frames an
            # alert fan-out sends (docs/benchmarks.md, issue 20).
            await self.app(scope, receive, send_with_id if scope["type"] == "http" else send)
        finally:
            structlog.contextvars.unbind_contextvars("request_id")
            request_id_var.reset(token)


async def propagate_request_id(request: httpx.Request) -> None:
    """httpx request hook: pass the current request id on every outgoing call."""
    request_id = request_id_var.get()
    if request_id and REQUEST_ID_HEADER not in request.headers:
        request.headers[REQUEST_ID_HEADER] = request_id
