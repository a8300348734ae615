"""The auth service as an ASGI app (``uvicorn auth_service.app:create_app --factory``)."""

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace

from fastapi import FastAPI, Request

from auth_service import fields
from auth_service.adapters.holders import DataHolders
from auth_service.adapters.notifications import OtpDelivery
from auth_service.adapters.otp_store import OtpStore
from auth_service.api import routers
from auth_service.keys import AuthKeys
from auth_service.models import OutboxEvent
from auth_service.service.audit import AuditRecorder
from auth_service.settings import AuthSettings, get_settings
from storefront_kit.app import create_service_app
from storefront_kit.audit import AUDIT_STREAM
from storefront_kit.db import create_engine, create_sessionmaker
from storefront_kit.events import OutboxRelay, StreamConsumer
from storefront_kit.health import HealthCheck, postgres_check, redis_check
from storefront_kit.rate_limits import RateLimiter
from storefront_kit.redis import create_redis
from storefront_kit.security import ServiceSecurity

__all__ = ["AUDIT_GROUP", "create_app"]

AUDIT_GROUP = "auth-audit"

OPENAPI_TAGS = [
    {
        "name": "auth",
        "description": "Log in by phone: OTP through Telegram, token refresh, logout.",
    },
    {"name": "users", "description": "The caller's own profile."},
    {"name": "admin: users", "description": "Users and roles (admin writes, moderator reads)."},
    {"name": "admin: audit", "description": "Every staff action of the platform (staff read)."},
    {"name": "internal", "description": "Service-to-service only (the Telegram bot's Start)."},
]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Create the service's clients once; close them on shutdown."""
    settings: AuthSettings = app.state.settings
    engine = create_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_s,
        connect_timeout=settings.db_connect_timeout_s,
        statement_timeout_ms=settings.db_statement_timeout_ms,
        application_name="auth",
    )
    app.state.engine = engine
    sessionmaker = create_sessionmaker(engine)
    app.state.sessionmaker = sessionmaker
    redis = create_redis(settings.redis_url, socket_timeout=settings.redis_socket_timeout_s)
    app.state.redis = redis
    app.state.otp_store = OtpStore(
        redis,
        phone_key=fields.phone_key,
        seal_phone=fields.seal_phone,
        unseal_phone=fields.unseal_phone,
    )
    limiter = RateLimiter(
        settings.redis_url,
        {
            "phone": settings.otp_phone_rate_limit,
            "ip": settings.otp_ip_rate_limit,
            "verify_phone": settings.otp_verify_phone_rate_limit,
            "verify_ip": settings.otp_verify_ip_rate_limit,
            "refresh_ip": settings.refresh_ip_rate_limit,
        },
        key_prefix="auth:rl",
        socket_timeout=settings.redis_socket_timeout_s,
        fail_open=settings.rate_limit_fail_open,
    )
    app.state.rate_limiter = limiter

    keys = AuthKeys.from_settings(settings)
    app.state.auth_keys = keys
    app.state.access_tokens = keys.issuer(settings)
    # Auth verifies the user tokens it signed itself with its own keys, not over HTTP.
    security: ServiceSecurity = app.state.security
    app.state.security = replace(security, user_verifier=keys.verifier(settings))
    delivery = OtpDelivery(
        client=app.state.http_client,
        auth=security.auth_for("notifications"),
        base_url=settings.notifications_url,
        timeout_s=settings.notifications_timeout_s,
        max_attempts=settings.notifications_max_attempts,
    )
    app.state.otp_delivery = delivery
    # The other services' parts of a data export, each over its internal route.
    app.state.data_holders = DataHolders(
        client=app.state.http_client,
        auths={name: security.auth_for(name) for name in ("orders", "notifications", "ws-gateway")},
        urls={
            "orders": settings.orders_url,
            "notifications": settings.notifications_url,
            "ws-gateway": settings.ws_gateway_url,
        },
        timeout_s=settings.export_timeout_s,
    )
    # user.erased leaves through the outbox, committed with the erasure itself.
    relay = OutboxRelay(
        sessionmaker=sessionmaker,
        redis=redis,
        model=OutboxEvent,
        poll_interval_s=settings.outbox_poll_interval_s,
        retention_s=settings.outbox_retention_s or None,
    )
    app.state.outbox_relay = relay
    # The other services' audit entries arrive on a stream; auth stores each once.
    consumer = StreamConsumer(
        redis=redis,
        stream=AUDIT_STREAM,
        group=AUDIT_GROUP,
        consumer=settings.audit_consumer_name or f"{socket.gethostname()}-{os.getpid()}",
        handler=AuditRecorder(sessionmaker),
    )
    app.state.audit_consumer = consumer
    stop = asyncio.Event()
    workers: list[asyncio.Task[None]] = []
    if settings.audit_consumer_enabled:
        workers.append(asyncio.create_task(consumer.run(stop), name="auth-audit-consumer"))
    if settings.outbox_relay_enabled:
        workers.append(asyncio.create_task(relay.run(stop), name="auth-outbox-relay"))
    try:
        yield
    finally:
        stop.set()
        if workers:
            # The consumer notices the stop within one blocking read; then it is cancelled.
            _, pending = await asyncio.wait(workers, timeout=consumer.block_ms / 1000 + 2)
            for task in pending:
                task.cancel()
            for task in workers:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await delivery.aclose()
        await limiter.aclose()
        await redis.aclose()
        await engine.dispose()


def _health_checks(request: Request) -> Sequence[HealthCheck]:
    state = request.app.state
    return [postgres_check(state.engine), redis_check(state.redis)]


def create_app(settings: AuthSettings | None = None) -> FastAPI:
    """Build the auth service app (refuses to without a user-token signing key, but in tests)."""
    settings = settings or get_settings()
    fields.install(*settings.field_crypto())
    if settings.platform.environment != "test":
        AuthKeys.from_settings(settings)
    return create_service_app(
        settings=settings,
        title="Auth",
        description="Phone OTP login via Telegram, JWT access and refresh tokens, users, roles.",
        version="0.1.0",
        lifespan=lifespan,
        routers=routers,
        health_checks=_health_checks,
        openapi_tags=OPENAPI_TAGS,
    )
