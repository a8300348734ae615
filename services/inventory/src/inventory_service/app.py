"""The inventory service as an ASGI app (``uvicorn inventory_service.app:create_app --factory``)."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from inventory_service.api import routers
from inventory_service.models import OutboxEvent
from inventory_service.settings import InventorySettings, get_settings
from inventory_service.state import InventoryState
from inventory_service.workers.sweeper import run_sweeper
from storefront_kit.app import create_service_app
from storefront_kit.events import OutboxRelay
from storefront_kit.lifespan import database_clients, database_health_checks
from storefront_kit.tasks import background_loops

__all__ = ["create_app"]

#: Each tag of the routes, and what it groups (the docs page shows them in this order).
OPENAPI_TAGS = {
    "admin: products": "Products and stock (admin writes, moderator reads).",
    "internal": "Service-to-service only: reserve, release, commit, export.",
}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[InventoryState]:
    """Create the service's clients and background tasks once; stop and close on shutdown."""
    settings: InventorySettings = app.state.settings
    async with database_clients(settings) as (engine, sessionmaker, redis):
        relay = OutboxRelay.from_settings(
            settings, sessionmaker=sessionmaker, redis=redis, model=OutboxEvent
        )
        async with background_loops() as loops:
            if settings.background_tasks_enabled:
                loops.start(relay.run(loops.stop), name="inventory-outbox-relay")
                sweeper = run_sweeper(
                    sessionmaker,
                    stop=loops.stop,
                    interval_s=settings.sweeper_interval_s,
                    batch_size=settings.sweeper_batch_size,
                    on_released=relay.notify,
                )
                loops.start(sweeper, name="inventory-reservation-sweeper")
            yield InventoryState(
                settings=settings,
                redis=redis,
                engine=engine,
                sessionmaker=sessionmaker,
                outbox_relay=relay,
            )


def create_app(settings: InventorySettings | None = None) -> FastAPI:
    """Build the inventory service app."""
    return create_service_app(
        settings=settings or get_settings(),
        title="Inventory",
        description="Products and stock: the write model that never oversells.",
        version="0.1.0",
        lifespan=lifespan,
        routers=routers,
        health_checks=database_health_checks(InventoryState),
        openapi_tags=OPENAPI_TAGS,
    )
