"""The service the kit builds around a test's routes, for the kit's tests: in process
(``from .demo_service import demo_app``) and for the apps they run under uvicorn, whose
folder is this one (``from demo_service import demo_app``)."""

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request

from storefront_kit.app import create_service_app
from storefront_kit.health import HealthCheck
from storefront_kit.settings import ServiceSettings


@asynccontextmanager
async def no_clients(app: FastAPI) -> AsyncIterator[None]:
    yield


def demo_app(
    settings: ServiceSettings,
    router: APIRouter,
    *,
    checks: Callable[[Request], Sequence[HealthCheck]] = lambda _request: [],
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[Any]] = no_clients,
) -> FastAPI:
    """The demo service: ``router`` on the kit's app, with no clients to start or stop
    and no health checks unless ``lifespan`` and ``checks`` say otherwise."""
    return create_service_app(
        settings=settings,
        title="Demo",
        description="demo",
        version="1",
        lifespan=lifespan,
        routers=[router],
        health_checks=checks,
    )
