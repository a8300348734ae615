"""The catalog service as an ASGI app (``uvicorn catalog_service.app:create_app --factory``)."""

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from elasticsearch import AsyncElasticsearch
from fastapi import FastAPI, Request

from catalog_service.api import routers
from catalog_service.settings import CatalogSettings, get_settings
from storefront_kit.app import create_service_app
from storefront_kit.health import HealthCheck, elasticsearch_check, redis_check
from storefront_kit.redis import create_redis

__all__ = ["create_app"]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Create the service's clients once; close them on shutdown."""
    settings: CatalogSettings = app.state.settings
    redis = create_redis(settings.redis_url, socket_timeout=settings.redis_socket_timeout_s)
    app.state.redis = redis
    elasticsearch = AsyncElasticsearch(
        settings.elasticsearch_url,
        request_timeout=settings.elasticsearch_timeout_s,
        max_retries=settings.elasticsearch_max_retries,
        retry_on_timeout=False,
    )
    app.state.elasticsearch = elasticsearch
    try:
        yield
    finally:
        await elasticsearch.close()
        await redis.aclose()


def _health_checks(request: Request) -> Sequence[HealthCheck]:
    state = request.app.state
    return [redis_check(state.redis), elasticsearch_check(state.elasticsearch)]


def create_app(settings: CatalogSettings | None = None) -> FastAPI:
    """Build the catalog service app."""
    return create_service_app(
        settings=settings or get_settings(),
        title="Catalog",
        description="Typo-tolerant product search on an Elasticsearch read model.",
        version="0.1.0",
        lifespan=lifespan,
        routers=routers,
        health_checks=_health_checks,
    )
