"""The orders service as an ASGI app (``uvicorn orders_service.app:create_app --factory``)."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.requests import HTTPConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

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
from orders_service.service.shards import OrdersShard, OrdersShards
from orders_service.settings import OrdersSettings, fraud_rules, get_settings
from orders_service.state import OrdersState
from orders_service.workers.erasure import ERASURE_GROUP, USERS_STREAM, UserErasure
from orders_service.workers.saga_recovery import run_recovery
from storefront_kit.app import create_service_app
from storefront_kit.breaker import Breaker
from storefront_kit.db import create_sessionmaker, engine_from_settings
from storefront_kit.events import OutboxRelay, StreamConsumer
from storefront_kit.health import HealthCheck, postgres_check, redis_check
from storefront_kit.http import create_aiohttp_session
from storefront_kit.lifespan import database_clients
from storefront_kit.redis import create_sync_redis
from storefront_kit.security import ServiceSecurity
from storefront_kit.state import service_state
from storefront_kit.tasks import background_loops
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
    urls = settings.database_urls()
    async with (
        database_clients(settings, urls[0]) as (engine, sessionmaker, redis),
        contextlib.AsyncExitStack() as closing,
    ):
        # pybreaker's Redis storage is synchronous; the adapter calls it from worker threads.
        sync_redis = create_sync_redis(
            settings.redis_url,
            socket_timeout=settings.redis_socket_timeout_s,
            connect_timeout=1.0,
        )
        closing.callback(sync_redis.close)

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
        # One aiohttp session (a keep-alive pool) per target; the service token is minted
        # (and reused by the minter) for every inventory call.
        inventory_http = create_aiohttp_session(
            timeout=settings.inventory_timeout_s,
            bearer_token=security.token_source("inventory"),
        )
        payments_http = create_aiohttp_session(timeout=settings.payments_timeout_s)
        shipping_http = create_aiohttp_session(timeout=settings.shipping_timeout_s)
        for client in (inventory_http, payments_http, shipping_http):
            closing.push_async_callback(client.close)
        inventory = InventoryClient(inventory_http, base_url=settings.inventory_url, policy=policy)
        payments = PaymentsClient(
            payments_http,
            base_url=settings.payments_api_url,
            policy=policy,
            breaker=breakers["payments"],
        )
        shipping = ShippingClient(
            shipping_http,
            base_url=settings.shipping_api_url,
            policy=policy,
            breaker=breakers["shipping"],
        )
        owner = replica_id()

        def shard(
            url: str, engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
        ) -> OrdersShard:
            """One database's saga runner and outbox relay."""
            orchestrator = SagaOrchestrator(
                sessionmaker=sessionmaker,
                steps=StepContext(
                    inventory=inventory,
                    payments=payments,
                    shipping=shipping,
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
                owner=owner,
            )
            return OrdersShard(
                url=url,
                engine=engine,
                sessionmaker=sessionmaker,
                saga_runner=SagaRunner(
                    orchestrator,
                    sessionmaker=sessionmaker,
                    max_concurrent=settings.max_concurrent_sagas,
                    lease_ttl_s=settings.saga_lease_ttl_s,
                    recovery_batch_size=settings.recovery_batch_size,
                    retry_after_error_s=settings.compensation_retry_initial_s,
                ),
                outbox_relay=OutboxRelay.from_settings(
                    settings, sessionmaker=sessionmaker, redis=redis, model=OutboxEvent
                ),
            )

        shard_list = [shard(urls[0], engine, sessionmaker)]
        for url in urls[1:]:  # the other shards' engines, disposed on the way out
            other = engine_from_settings(settings, url)
            closing.push_async_callback(other.dispose)
            shard_list.append(shard(url, other, create_sessionmaker(other)))
        shards = OrdersShards(shard_list, router=settings.shard_router)
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
        redis_watch.start()
        # user.erased from auth: pseudonymise the user's orders (orders_service.service.privacy).
        erasure = StreamConsumer(
            redis=redis,
            stream=USERS_STREAM,
            group=ERASURE_GROUP,
            consumer=owner,
            handler=UserErasure(
                shards=shards,
                redis=redis,
                fraud_rules=fraud_rules(settings),
                fraud_namespace=settings.fraud_namespace,
            ),
        )
        async with background_loops(timeout_s=5.0) as loops:
            if settings.background_tasks_enabled:
                loops.start(erasure.run(loops.stop), name="orders-erasure")
                for each in shards.all:
                    loops.start(each.outbox_relay.run(loops.stop), name="orders-outbox-relay")
                    loops.start(
                        run_recovery(
                            each.saga_runner, loops.stop, interval_s=settings.recovery_interval_s
                        ),
                        name="orders-saga-recovery",
                    )
            try:
                yield OrdersState(
                    settings=settings,
                    redis=redis,
                    redis_breaker=redis_breaker,
                    engine=engine,
                    sessionmaker=sessionmaker,
                    shards=shards,
                    breakers=breakers,
                    erasure_consumer=erasure,
                )
            finally:
                # Recovery stops claiming before the runners cancel their sagas.
                loops.stop.set()
                await asyncio.gather(*(each.saga_runner.shutdown() for each in shards.all))
                await redis_watch.stop()


def _health_checks(request: HTTPConnection) -> Sequence[HealthCheck]:
    """Readiness: every orders database, and Redis (through its watch's breaker)."""
    state = service_state(request, OrdersState)
    shards = state.shards.all
    return [
        *(
            postgres_check(shard.engine, "postgres" if len(shards) == 1 else f"postgres-{i}")
            for i, shard in enumerate(shards, start=1)
        ),
        redis_check(state.redis, breaker=state.redis_breaker),
    ]


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
        health_checks=_health_checks,
        openapi_tags=OPENAPI_TAGS,
    )
