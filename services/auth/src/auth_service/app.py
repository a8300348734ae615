"""The auth service as an ASGI app (``uvicorn auth_service.app:create_app --factory``)."""

import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

import httpx
from fastapi import FastAPI

from auth_service import fields
from auth_service.api import routers
from auth_service.clients.holders import DataHolders
from auth_service.clients.notifications import OtpDelivery
from auth_service.clients.otp_store import OtpStore
from auth_service.models import OutboxEvent
from auth_service.service.audit import AuditRecorder
from auth_service.service.keys import AuthKeys
from auth_service.settings import AuthSettings, get_settings
from auth_service.state import AuthState
from storefront_kit.app import create_service_app
from storefront_kit.audit import AUDIT_STREAM
from storefront_kit.events import OutboxRelay, StreamConsumer
from storefront_kit.lifespan import database_clients, database_health_checks
from storefront_kit.rate_limits import RateLimiter
from storefront_kit.security import ServiceSecurity
from storefront_kit.tasks import TaskSet, background_loops

__all__ = ["AUDIT_GROUP", "create_app"]

AUDIT_GROUP = "auth-audit"

#: Each tag of the routes, and what it groups (the docs page shows them in this order).
OPENAPI_TAGS = {
    "auth": "Log in by phone: OTP through Telegram, token refresh, logout.",
    "users": "The caller's own profile.",
    "admin: users": "Users and roles (admin writes, moderator reads).",
    "admin: audit": "Every staff action of the platform (staff read).",
    "internal": "Service-to-service only (the Telegram bot's Start).",
}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[AuthState]:
    """Create the service's clients once; close them on shutdown."""
    settings: AuthSettings = app.state.settings
    async with database_clients(settings) as (engine, sessionmaker, redis):
        otp_store = OtpStore(
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

        keys = AuthKeys.from_settings(settings)
        # Auth verifies the user tokens it signed itself with its own keys, not over HTTP:
        # the one change a service makes to the kit's security (app.state.security).
        security: ServiceSecurity = app.state.security
        app.state.security = replace(security, user_verifier=keys.verifier(settings))
        http_client: httpx.AsyncClient = app.state.http_client
        delivery = OtpDelivery(
            client=http_client,
            auth=security.auth_for("notifications"),
            base_url=settings.notifications_url,
            timeout_s=settings.notifications_timeout_s,
            max_attempts=settings.notifications_max_attempts,
        )
        # The other services' parts of a data export, each over its internal route.
        holders = DataHolders(
            client=http_client,
            auths={
                name: security.auth_for(name) for name in ("orders", "notifications", "ws-gateway")
            },
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
        # The other services' audit entries arrive on a stream; auth stores each once.
        consumer = StreamConsumer(
            redis=redis,
            stream=AUDIT_STREAM,
            group=AUDIT_GROUP,
            consumer=settings.audit_consumer_name or f"{socket.gethostname()}-{os.getpid()}",
            handler=AuditRecorder(sessionmaker),
        )
        # Clean-ups a request leaves behind (after an erasure), drained at shutdown.
        tasks = TaskSet()
        try:
            # The consumer notices the stop within one blocking read; then it is cancelled.
            async with background_loops(timeout_s=consumer.block_ms / 1000 + 2) as loops:
                if settings.audit_consumer_enabled:
                    loops.start(consumer.run(loops.stop), name="auth-audit-consumer")
                if settings.outbox_relay_enabled:
                    loops.start(relay.run(loops.stop), name="auth-outbox-relay")
                yield AuthState(
                    settings=settings,
                    redis=redis,
                    engine=engine,
                    sessionmaker=sessionmaker,
                    otp_store=otp_store,
                    rate_limiter=limiter,
                    keys=keys,
                    access_tokens=keys.issuer(settings),
                    otp_delivery=delivery,
                    data_holders=holders,
                    outbox_relay=relay,
                    audit_consumer=consumer,
                    tasks=tasks,
                )
        finally:
            await tasks.aclose()
            await delivery.aclose()
            await limiter.aclose()


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
        health_checks=database_health_checks(AuthState),
        openapi_tags=OPENAPI_TAGS,
    )
