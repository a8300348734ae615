"""Pure ASGI middleware shared by every service: access log, metrics, crash guard."""

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from storefront_kit.logging import get_logger
from storefront_kit.metrics import HTTP_REQUEST_DURATION, HTTP_REQUESTS
from storefront_kit.problems import problem_response

__all__ = ["AccessLogMiddleware", "CrashGuardMiddleware"]

logger = get_logger("storefront.access")

_QUIET_PATHS = frozenset({"/health/live", "/health/ready", "/metrics"})


def _route_template(scope: Scope) -> str:
    # The matched route's template keeps metric label cardinality bounded.
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class AccessLogMiddleware:
    """One structured log line and Prometheus observations per HTTP request."""

    def __init__(self, app: ASGIApp, *, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            elapsed = time.perf_counter() - started
            route = _route_template(scope)
            HTTP_REQUESTS.labels(self.service, scope["method"], route, str(status)).inc()
            HTTP_REQUEST_DURATION.labels(self.service, scope["method"], route).observe(elapsed)
            if scope["path"] not in _QUIET_PATHS:
                logger.info(
                    "http_request",
                    method=scope["method"],
                    path=scope["path"],
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                )


class CrashGuardMiddleware:
    """Turns an unhandled exception into a 500 problem; the traceback only reaches the log."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def track(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, track)
        except Exception:
            logger.exception("unhandled_error", path=scope["path"])
            if started:
                raise
            response = problem_response(500, instance=scope["path"])
            await response(scope, receive, send)
