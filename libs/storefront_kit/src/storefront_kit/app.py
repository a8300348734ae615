"""The one way a storefront service becomes an ASGI app."""

import asyncio
import gc
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import replace
from typing import Any, cast

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from redis.asyncio import Redis, RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.responses import HTMLResponse, Response

from storefront_kit.breaker import Breaker
from storefront_kit.error_reporting import init_error_reporting, report_exception
from storefront_kit.health import HealthCheck, health_router
from storefront_kit.http import create_http_client
from storefront_kit.logging import configure_logging, get_logger
from storefront_kit.metrics import metrics_router
from storefront_kit.middleware import (
    AccessLogMiddleware,
    AdmissionLimitMiddleware,
    CrashGuardMiddleware,
    ProblemCORSMiddleware,
)
from storefront_kit.openapi import install_problem_openapi
from storefront_kit.problems import install_problem_handlers, problem_response
from storefront_kit.request_id import RequestIdMiddleware
from storefront_kit.revocation import RevocationCheckingVerifier
from storefront_kit.security import (
    ServiceSecurity,
    build_security,
    route_callers,
    service_callers_check,
    service_signing_key,
)
from storefront_kit.settings import ServiceSettings
from storefront_kit.state import ServiceState, forget_service_state, keep_service_state
from storefront_kit.tracing import fastapi_telemetry, flush_tracing, init_tracing

__all__ = ["create_service_app"]

logger = get_logger(__name__)
_DOCS_PREFIX = re.compile(r"^/docs/[a-z-]{1,32}$")


def _docs_router(title: str) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/docs")
    async def docs(request: Request) -> HTMLResponse:
        # Behind the gateway the page lives at /docs/<service>; its OpenAPI document
        # is mapped to /docs/<service>/openapi.json, announced by X-Forwarded-Prefix.
        prefix = request.headers.get("x-forwarded-prefix", "")
        openapi_url = (prefix if _DOCS_PREFIX.match(prefix) else "") + "/openapi.json"
        return get_swagger_ui_html(openapi_url=openapi_url, title=f"{title} API")

    return router


async def _dependency_down(request: Request, exc: Exception) -> Response:
    # A database or Redis that cannot be reached is a 503 the caller may retry, not a 500.
    logger.warning("dependency_unavailable", error=type(exc).__name__, path=request.url.path)
    return problem_response(
        503,
        code="dependency_unavailable",
        detail="A dependency of this service is unavailable; retry shortly.",
        headers={"Retry-After": "1"},
        instance=request.url.path,
    )


async def _value_refused(request: Request, exc: Exception) -> Response:
    # PostgreSQL's "data exception" class (SQLSTATE 22xxx: a NUL character, a number out
    # of range, text it cannot store) is about the value sent, never the server: a 422.
    # Anything else from the database is a crash, as before.
    orig = getattr(exc, "orig", None)
    sqlstate = str(getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None) or "")
    if not sqlstate.startswith("22"):
        logger.exception("unhandled_error", path=request.url.path)
        report_exception(exc, headers=request.scope.get("headers", ()))
        return problem_response(500, instance=request.url.path)
    logger.info("value_refused_by_database", sqlstate=sqlstate, path=request.url.path)
    return problem_response(
        422,
        code="value_not_storable",
        title="Request validation failed",
        detail="A value in the request cannot be stored (for example a NUL character).",
        instance=request.url.path,
        extra={"errors": []},
    )


def _with_platform_clients(
    settings: ServiceSettings,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[Any]],
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Wrap a service's lifespan with what every service has: an HTTP client and security.

    The service's lifespan yields its typed state (a :class:`~storefront_kit.state.
    ServiceState`), kept for dependencies while it runs (:mod:`storefront_kit.state`),
    or ``None`` (a service that keeps what it built on ``app.state`` itself).
    """

    @asynccontextmanager
    async def platform_lifespan(app: FastAPI) -> AsyncIterator[None]:
        http_client = create_http_client(timeout=settings.http_timeout_s)
        app.state.http_client = http_client
        # Tests may install their own (test-key) security before start-up.
        if not isinstance(getattr(app.state, "security", None), ServiceSecurity):
            app.state.security = build_security(settings, http_client=http_client)
        try:
            async with lifespan(app) as state:
                if isinstance(state, ServiceState):
                    keep_service_state(app, state)
                _check_revocations(app, state)
                if settings.platform.gc_freeze:
                    _freeze_start_up_objects()
                try:
                    yield
                finally:
                    forget_service_state(app)
        finally:
            await http_client.aclose()
            # The last spans (the shutdown's own included) leave before the process does.
            await asyncio.to_thread(flush_tracing)

    return platform_lifespan


def _check_revocations(app: FastAPI, state: object) -> None:
    # Access tokens of erased users are refused everywhere (storefront_kit.revocation):
    # the user verifier, whoever built it (the platform, auth's own, a test's), asks the
    # service's Redis about each token's subject, skipping while its Redis breaker is open.
    security = getattr(app.state, "security", None)
    # A typed lifespan state holds the service's Redis; older lifespans set app.state.
    redis: object
    breaker: object
    if isinstance(state, ServiceState):
        redis, breaker = state.redis, state.redis_breaker
    else:
        redis = getattr(app.state, "redis", None)
        breaker = getattr(app.state, "redis_breaker", None)
    # A cluster client (storefront_kit.redis) stands where a Redis does; it is no subclass.
    if not isinstance(security, ServiceSecurity) or not isinstance(redis, Redis | RedisCluster):
        return
    if not isinstance(security.user_verifier, RevocationCheckingVerifier):
        checking = RevocationCheckingVerifier(
            security.user_verifier,
            cast(Redis, redis),
            breaker=breaker if isinstance(breaker, Breaker) else None,
        )
        app.state.security = replace(security, user_verifier=checking)


def _freeze_start_up_objects() -> None:
    # What is alive once the service has started (modules, the app, its routes and
    # models, the clients) lives as long as the process. Left to the cyclic collector,
    # every full collection walks all of it: ~100 ms with the event loop stopped, which
    # was the p99 of a cached search. Collect the start-up garbage first, then freeze
    # the rest (objects still freed by reference counting; only cycles among them leak).
    gc.collect()
    gc.freeze()


def create_service_app(
    *,
    settings: ServiceSettings,
    title: str,
    description: str,
    version: str,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[Any]],
    routers: Sequence[APIRouter],
    health_checks: Callable[[Request], Sequence[HealthCheck]],
    openapi_tags: Mapping[str, str] | None = None,
) -> FastAPI:
    """Build a FastAPI app with the platform's middleware, problems, health, metrics and docs."""
    platform = settings.platform
    if platform.environment != "test":
        service_signing_key(settings)  # no key of its own: refuse to start, naming the variable
    configure_logging(
        service=settings.service_name, level=platform.log_level, json=platform.log_json
    )
    # Unhandled errors to Sentry when a DSN is set (the service's own, else the platform's).
    init_error_reporting(
        dsn=settings.sentry_dsn or platform.sentry_dsn,
        service=settings.service_name,
        release=platform.sentry_release or f"storefront-{settings.service_name}@{version}",
        environment=platform.environment,
    )
    # Traces over OTLP when an endpoint is set (the service's own, else the platform's);
    # without one nothing is installed and FastAPI's telemetry finds no provider.
    init_tracing(
        endpoint=settings.otlp_endpoint or platform.otlp_endpoint,
        service=settings.service_name,
        version=version,
        environment=platform.environment,
        sample_ratio=platform.trace_sample_ratio,
    )
    app = FastAPI(
        title=title,
        description=description,
        version=version,
        lifespan=_with_platform_clients(settings, lifespan),
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if platform.docs_enabled else None,
        openapi_tags=[
            {"name": name, "description": description}
            for name, description in (openapi_tags or {}).items()
        ]
        or None,
        telemetry=fastapi_telemetry(),
    )
    app.state.settings = settings
    install_problem_handlers(app)
    install_problem_openapi(app)
    unreachable: tuple[type[Exception], ...] = (
        OperationalError,
        InterfaceError,
        PoolTimeoutError,
        OSError,  # connection refused/reset and timeouts from asyncpg and sockets
        RedisConnectionError,
        RedisTimeoutError,
    )
    for exc_type in unreachable:
        app.add_exception_handler(exc_type, _dependency_down)
    # More general than the above: only what they do not catch lands here.
    app.add_exception_handler(DBAPIError, _value_refused)

    for router in routers:
        app.include_router(router)
    # A service with internal routes is ready only if someone may call them.
    own_checks = [service_callers_check(app)] if route_callers(app) else []
    app.include_router(health_router(lambda request: [*health_checks(request), *own_checks]))
    app.include_router(metrics_router())
    if platform.docs_enabled:
        app.include_router(_docs_router(title))

    # Added innermost first: the request id wraps everything, the crash guard sits closest.
    app.add_middleware(CrashGuardMiddleware)
    # Inside CORS, so that a browser sees a refused request's 503 and not a CORS error.
    app.add_middleware(
        AdmissionLimitMiddleware,
        service=settings.service_name,
        max_concurrent=settings.max_concurrent_requests,
        queue_timeout_s=settings.request_queue_timeout_s,
    )
    app.add_middleware(
        ProblemCORSMiddleware,
        allow_origins=platform.cors_allow_origins,
        allow_methods=platform.cors_allow_methods,
        allow_headers=platform.cors_allow_headers,
        allow_credentials=platform.cors_allow_credentials,
        expose_headers=["X-Request-ID", "Location", "ETag", "Retry-After"],
        max_age=600,
    )
    app.add_middleware(AccessLogMiddleware, service=settings.service_name)
    app.add_middleware(RequestIdMiddleware)
    return app
