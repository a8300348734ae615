"""The orders service as an ASGI app (``uvicorn orders_service.app:create_app --factory``)."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from orders_service import fields
from orders_service.api import routers
from orders_service.clients.alerts import publish_alert
from orders_service.clients.breakers import build_breaker
from orders_service.clients.inventory import InventoryClient
from orders_service.clients.payments import PaymentsClient
from orders_service.clients.resilience import RetryPolicy, is_business_error
from orders_service.clients.shipping import ShippingClient
from orders_service.models import OutboxEvent
from orders_service.service.fraud import FraudChecker
from orders_service.service.saga.orchestrator import SagaOrchestrator
from orders_service.service.saga.runner import SagaRunner, replica_id
from orders_service.service.saga.steps import StepContext
from orders_service.settings import OrdersSettings, fraud_rules, get_settings
from orders_service.state import OrdersState
from orders_service.workers.erasure import ERASURE_GROUP, USERS_STREAM, UserErasure
from orders_service.workers.saga_recovery import run_recovery
from storefront_kit.app import create_service_app
from storefront_kit.breaker import Breaker
from storefront_kit.events import OutboxRelay, StreamConsumer
from storefront_kit.http import create_http_client
from storefront_kit.lifespan import database_clients, database_health_checks
from storefront_kit.redis import create_sync_redis
from storefront_kit.security import ServiceSecurity
from storefront_kit.watch import DependencyWatch, redis_ping

__all__ = ["create_app"]

#: Each tag of the routes, and what it groups (the docs page shows them in this order).
OPENAPI_TAGS = {
    "orders": "Checkout (a persisted saga) and the caller's own orders.",
    "admin: orders": "All orders (staff read), status transitions and cancel+refund (admin).",
    "internal": "Service-to-service only (auth's data export).",
}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[OrdersState]:
    """Create the service's clients, breakers and saga workers once; stop them on shutdown."""
    settings: OrdersSettings = app.state.settings
    security: ServiceSecurity = app.state.security
    async with database_clients(settings) as (engine, sessionmaker, redis):
        # pybreaker's Redis storage is synchronous; the adapter calls it from worker threads.
        sync_redis = create_sync_redis(
            settings.redis_url,
            socket_timeout=settings.redis_socket_timeout_s,
            connect_timeout=1.0,
        )

        async def on_open(name: str) -> None:
            await publish_alert(
                redis,
                "circuit.opened",
                {"breaker": name, "reset_timeout_s": settings.breaker_reset_timeout_s},
            )

        breakers = {
            name: build_breaker(
                name,
                sync_redis=sync_redis,
                redis=redis,
                fail_max=settings.breaker_fail_max,
                reset_timeout_s=settings.breaker_reset_timeout_s,
                is_business_error=is_business_error,
                namespace=settings.breaker_namespace,
                on_open=on_open,
            )
            for name in ("payments", "shipping")
        }
        policy = RetryPolicy(
            attempts=settings.retry_attempts,
            initial_s=settings.retry_backoff_initial_s,
            max_s=settings.retry_backoff_max_s,
        )
        inventory_http = create_http_client(
            base_url=settings.inventory_url,
            timeout=settings.inventory_timeout_s,
            auth=security.auth_for("inventory"),
        )
        payments_http = create_http_client(
            base_url=settings.payments_api_url, timeout=settings.payments_timeout_s
        )
        shipping_http = create_http_client(
            base_url=settings.shipping_api_url, timeout=settings.shipping_timeout_s
        )
        relay = OutboxRelay.from_settings(
            settings, sessionmaker=sessionmaker, redis=redis, model=OutboxEvent
        )
        orchestrator = SagaOrchestrator(
            sessionmaker=sessionmaker,
            steps=StepContext(
                inventory=InventoryClient(inventory_http, policy=policy),
                payments=PaymentsClient(payments_http, policy=policy, breaker=breakers["payments"]),
                shipping=ShippingClient(shipping_http, policy=policy, breaker=breakers["shipping"]),
                settings=settings,
                fraud=FraudChecker(
                    rules=fraud_rules(settings),
                    sessionmaker=sessionmaker,
                    redis=redis,
                    namespace=settings.fraud_namespace,
                ),
            ),
            redis=redis,
            settings=settings,
            owner=replica_id(),
        )
        # Redis is watched: the moment it stops answering its breaker opens, checkouts stop
        # waiting for sagas that cannot progress, and readiness says so.
        redis_breaker = Breaker(
            "redis",
            failure_threshold=settings.redis_watch_misses,
            reset_timeout_s=settings.redis_watch_interval_ms / 1000,
            is_failure=lambda exc: isinstance(exc, RedisConnectionError | RedisTimeoutError),
        )
        redis_watch = DependencyWatch(
            redis_breaker,
            redis_ping(redis),
            interval_s=settings.redis_watch_interval_ms / 1000,
            timeout_s=settings.redis_watch_timeout_ms / 1000,
            misses=settings.redis_watch_misses,
        )
        runner = SagaRunner(
            orchestrator,
            sessionmaker=sessionmaker,
            max_concurrent=settings.max_concurrent_sagas,
            lease_ttl_s=settings.saga_lease_ttl_s,
            recovery_batch_size=settings.recovery_batch_size,
            retry_after_error_s=settings.compensation_retry_initial_s,
        )
        stop = asyncio.Event()
        redis_watch.start()
        tasks: list[asyncio.Task[None]] = []
        # user.erased from auth: pseudonymise the user's orders (orders_service.service.privacy).
        erasure = StreamConsumer(
            redis=redis,
            stream=USERS_STREAM,
            group=ERASURE_GROUP,
            consumer=replica_id(),
            handler=UserErasure(
                sessionmaker=sessionmaker,
                redis=redis,
                fraud_rules=fraud_rules(settings),
                fraud_namespace=settings.fraud_namespace,
            ),
        )
        if settings.background_tasks_enabled:
            tasks.append(asyncio.create_task(relay.run(stop), name="orders-outbox-relay"))
            tasks.append(asyncio.create_task(erasure.run(stop), name="orders-erasure"))
            tasks.append(
                asyncio.create_task(
                    run_recovery(runner, stop, interval_s=settings.recovery_interval_s),
                    name="orders-saga-recovery",
                )
            )
        try:
            yield OrdersState(
                settings=settings,
                redis=redis,
                redis_breaker=redis_breaker,
                engine=engine,
                sessionmaker=sessionmaker,
                breakers=breakers,
                saga_runner=runner,
                outbox_relay=relay,
                erasure_consumer=erasure,
            )
        finally:
            stop.set()
            relay.notify()
            await runner.shutdown()
            await redis_watch.stop()
            for task in tasks:
                with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(task, timeout=5.0)
            for client in (inventory_http, payments_http, shipping_http):
                await client.aclose()
            sync_redis.close()


def create_app(settings: OrdersSettings | None = None) -> FastAPI:
    """Build the orders service app."""
    settings = settings or get_settings()
    fields.install(*settings.field_crypto())
    return create_service_app(
        settings=settings,
        title="Orders",
        description="Checkout as a persisted saga with compensation and circuit breakers.",
        version="0.1.0",
        lifespan=lifespan,
        routers=routers,
        health_checks=database_health_checks(OrdersState),
        openapi_tags=OPENAPI_TAGS,
    )
