"""What every sandbox app shares: health routes, request ids, problem rendering."""

import gzip
import re
import uuid
import zlib

from fastapi import FastAPI, Request
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from storefront_sandbox.problems import ProblemError, install_problem_handlers

__all__ = ["REQUEST_ID_HEADER", "RequestIdMiddleware", "decoded_body", "new_app"]

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,128}$")


class RequestIdMiddleware:
    """Pure ASGI: echo a valid incoming ``X-Request-ID`` or mint one (docs/design.md §4)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = next(
            (v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"x-request-id"),
            None,
        )
        request_id = (
            incoming if incoming and _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        )

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        await self.app(scope, receive, send_with_id)


def new_app(*, title: str, description: str) -> FastAPI:
    """A FastAPI app with the routes and behaviour every stand-in has."""
    app = FastAPI(title=title, description=description, version="0.1.0")
    install_problem_handlers(app)
    app.add_middleware(RequestIdMiddleware)

    @app.get("/health/live", tags=["health"])
    async def live() -> dict[str, str]:
        """The process answers."""
        return {"status": "ok"}

    @app.get("/health/ready", tags=["health"])
    async def ready() -> dict[str, str]:
        """Ready as soon as it answers: a stand-in has no dependencies of its own."""
        return {"status": "ok"}

    return app


async def decoded_body(request: Request, *, limit: int, code: str, detail: str) -> bytes:
    """The request's body as it was before its ``Content-Encoding``; a 413 problem
    ``code`` saying ``detail`` when that is more than ``limit`` bytes. Another encoding
    than none, gzip or deflate is a ``ValueError``, a corrupt body ``OSError``,
    ``EOFError`` or ``zlib.error``."""
    body = _decompress(await request.body(), request.headers.get("content-encoding", ""))
    if len(body) > limit:
        raise ProblemError(413, code, detail)
    return body


def _decompress(body: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    raise ValueError(f"unsupported Content-Encoding {encoding!r}")
