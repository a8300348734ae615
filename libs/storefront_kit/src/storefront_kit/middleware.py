"""Pure ASGI middleware every service shares: access log, metrics, admission, CORS, crash guard."""

import asyncio
import time

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from storefront_kit.error_reporting import report_exception
from storefront_kit.logging import get_logger
from storefront_kit.metrics import HTTP_REQUEST_DURATION, HTTP_REQUESTS, HTTP_REQUESTS_QUEUED
from storefront_kit.problems import problem_response

__all__ = [
    "AccessLogMiddleware",
    "AdmissionLimitMiddleware",
    "CrashGuardMiddleware",
    "ProblemCORSMiddleware",
]

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


class AdmissionLimitMiddleware:
    """At most ``max_concurrent`` HTTP requests are worked on at once; the rest wait here.

    One event loop serves every request of a worker. Let a burst of several hundred
    requests in at once and each of them is half done at any moment: a request holding
    a pooled database connection waits behind all the others' parsing and token checks
    for every step it takes, so connections are held longer, the pool runs dry and
    requests time out of it. Waiting here costs nothing and keeps the requests in
    flight few enough to finish quickly. A request still waiting after
    ``queue_timeout_s`` gets a 503 with ``Retry-After`` before any of its work was done.
    WebSockets (long-lived), health probes and metrics are never held back.
    """

    def __init__(
        self, app: ASGIApp, *, service: str, max_concurrent: int, queue_timeout_s: float
    ) -> None:
        self.app = app
        self._queued = HTTP_REQUESTS_QUEUED.labels(service)
        self._slots = asyncio.Semaphore(max_concurrent)
        self._queue_timeout_s = queue_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in _QUIET_PATHS:
            await self.app(scope, receive, send)
            return
        if self._slots.locked():
            self._queued.inc()
            try:
                async with asyncio.timeout(self._queue_timeout_s):
                    await self._slots.acquire()
            except TimeoutError:
                response = problem_response(
                    503,
                    code="overloaded",
                    detail="The service is busy; retry shortly.",
                    headers={"Retry-After": "1"},
                    instance=scope["path"],
                )
                await response(scope, receive, send)
                return
            finally:
                self._queued.dec()
        else:
            await self._slots.acquire()
        try:
            await self.app(scope, receive, send)
        finally:
            self._slots.release()


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
        except Exception as exc:
            logger.exception("unhandled_error", path=scope["path"])
            report_exception(exc, headers=scope.get("headers", ()))
            if started:
                raise
            response = problem_response(500, instance=scope["path"])
            await response(scope, receive, send)


class ProblemCORSMiddleware(CORSMiddleware):
    """Starlette's CORS, but a refused preflight is a 403 problem, not a 400 in plain text.

    A preflight from an origin (or asking for a method or header) outside the allowed
    lists is refused; the answer carries no ``Access-Control-Allow-*`` header, so the
    browser blocks the request, and the caller reads why in a problem like any other.
    """

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        reason = bytes(response.body).decode("utf-8", "replace")
        # Nothing is granted: no Access-Control-Allow-* at all, only what caches need.
        vary = {"Vary": response.headers["vary"]} if "vary" in response.headers else {}
        return problem_response(
            403,
            code="cors_preflight_refused",
            title="CORS preflight refused",
            detail=f"{reason}.",
            headers=vary,
        )
