"""What every sandbox app shares: health routes, request ids, problem rendering."""

import re
import uuid

from fastapi import FastAPI
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from storefront_sandbox.problems import install_problem_handlers

__all__ = ["REQUEST_ID_HEADER", "RequestIdMiddleware", "new_app"]

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
