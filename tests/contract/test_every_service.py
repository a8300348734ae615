"""What every service promises alike, checked once over ``storefront_stack.topology``.

Each service starts on its real dependencies, says which of them it checks and reports
readiness honestly (503 problem naming Redis when Redis is down), serves its OpenAPI
and metrics, and, when it owns a database, its migrations build exactly the schema its
models describe and downgrade cleanly. What only one service promises stays in that
service's own tests; a new service in ``SERVICES`` is checked here without a copy.
"""

import asyncio
import importlib
import inspect
import typing
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, APIWebSocketRoute, iter_route_contexts
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from jwt_core_lib import SigningKey
from storefront_kit.migrations import alembic_config
from storefront_kit.settings import ServiceSettings
from storefront_stack.pytest_plugin import create_test_database
from storefront_stack.serving import in_process
from storefront_stack.topology import CALLERS, SERVICES, Service

DEAD_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1
WITH_DATABASE = [service for service in SERVICES if service.database]


def _settings_class(service: Service) -> type[ServiceSettings]:
    module = importlib.import_module(f"{service.package}.settings")
    settings_class: type[ServiceSettings] = typing.get_type_hints(module.get_settings)["return"]
    return settings_class


def _expected_checks(service: Service) -> dict[str, str]:
    checks = {"redis": "ok"}
    if service.database:
        checks["postgres"] = "ok"
    if service.elasticsearch:
        checks["elasticsearch"] = "ok"
    if service.name in CALLERS:
        # Ready only while every internal route has a caller that could sign for it.
        checks["service_tokens"] = "ok"
    return checks


@pytest.fixture(scope="module")
async def databases(postgres_server_url: str) -> dict[str, str]:
    """A migrated database per database-owning service (module-wide: read only here)."""
    # One after the other: Alembic's environment is process-wide.
    return {
        service.name: await asyncio.to_thread(
            create_test_database, postgres_server_url, service.package
        )
        for service in WITH_DATABASE
    }


@pytest.fixture
def settings_for(
    databases: dict[str, str], elasticsearch_url: str
) -> typing.Callable[[Service, str], ServiceSettings]:
    def build(service: Service, redis_url: str) -> ServiceSettings:
        values: dict[str, Any] = {"redis_url": redis_url}
        if service.database:
            values["database_url"] = databases[service.name]
        if service.elasticsearch:
            values["elasticsearch_url"] = elasticsearch_url
        if service.name in CALLERS:
            values["service_token_callers"] = {
                caller: [SigningKey.generate().x] for caller in CALLERS[service.name]
            }
        return _settings_class(service)(**values)

    return build


@asynccontextmanager
async def serve(service: Service, settings: ServiceSettings) -> AsyncIterator[httpx.AsyncClient]:
    app = importlib.import_module(f"{service.package}.app").create_app(settings)
    async with in_process(app, f"http://{service.name}", request_timeout_s=5) as client:
        yield client


@pytest.mark.parametrize("service", SERVICES, ids=lambda service: service.name)
async def test_ready_when_its_dependencies_answer(
    service: Service,
    settings_for: typing.Callable[[Service, str], ServiceSettings],
    redis_url: str,
) -> None:
    async with serve(service, settings_for(service, redis_url)) as client:
        live = await client.get("/health/live")
        ready = await client.get("/health/ready")

    assert live.json() == {"status": "ok"}
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == _expected_checks(service)


@pytest.mark.parametrize("service", SERVICES, ids=lambda service: service.name)
async def test_not_ready_and_names_redis_when_redis_is_down(
    service: Service, settings_for: typing.Callable[[Service, str], ServiceSettings]
) -> None:
    async with serve(service, settings_for(service, DEAD_REDIS)) as client:
        ready = await client.get("/health/ready")

    assert ready.status_code == 503
    assert ready.headers["content-type"] == "application/problem+json"
    assert ready.json()["down"] == ["redis"]


@pytest.mark.parametrize(
    "service", [s for s in SERVICES if s.name in CALLERS], ids=lambda service: service.name
)
async def test_not_ready_while_no_caller_could_sign_for_its_internal_routes(
    service: Service,
    settings_for: typing.Callable[[Service, str], ServiceSettings],
    redis_url: str,
) -> None:
    settings = settings_for(service, redis_url).model_copy(update={"service_token_callers": {}})
    async with serve(service, settings) as client:
        ready = await client.get("/health/ready")

    assert ready.status_code == 503
    assert ready.json()["down"] == ["service_tokens"]


@pytest.mark.parametrize("service", SERVICES, ids=lambda service: service.name)
async def test_serves_its_openapi_and_metrics(
    service: Service, settings_for: typing.Callable[[Service, str], ServiceSettings]
) -> None:
    async with serve(service, settings_for(service, DEAD_REDIS)) as client:
        schema = (await client.get("/openapi.json")).json()
        metrics = await client.get("/metrics")

    assert schema["info"]["title"]
    assert "/health/ready" in schema["paths"]
    assert "http_requests_total" in metrics.text


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    """What FastAPI calls to answer a route: its endpoint and every dependency, nested."""
    if dependant.call is not None:
        yield dependant.call
    for sub in dependant.dependencies:
        yield from _calls(sub)


def _runs_in_a_thread(call: Callable[..., Any]) -> bool:
    """Whether FastAPI runs ``call`` in its thread pool: anything but a coroutine function
    or an async generator function (a plain ``def``, a class, a sync generator), or an
    object whose ``__call__`` is one."""
    target = call if inspect.isroutine(call) or inspect.isclass(call) else type(call).__call__
    return not (inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target))


def _threaded_calls(app: FastAPI) -> list[str]:
    found = set()
    # Each route as served (an included router's routes with its prefix and dependencies).
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, APIRoute | APIWebSocketRoute):
            for call in _calls(route.dependant):
                if _runs_in_a_thread(call):
                    found.add(f"{route.path}: {getattr(call, '__qualname__', repr(call))}")
    return sorted(found)


@pytest.mark.parametrize("service", SERVICES, ids=lambda service: service.name)
def test_no_route_runs_its_endpoint_or_a_dependency_in_a_thread(
    service: Service, settings_for: typing.Callable[[Service, str], ServiceSettings]
) -> None:
    """A plain ``def`` endpoint or dependency is run in FastAPI's thread pool: a hop to a
    worker thread and back on every request (a checkout paid one for the caller's shard,
    issue 17), and the pool's 40 threads a limit nobody set. Nothing here blocks."""
    module = importlib.import_module(f"{service.package}.app")
    app = module.create_app(settings_for(service, DEAD_REDIS))

    assert _threaded_calls(app) == []


def _schema_diff(base: Any) -> typing.Callable[[Connection], list[object]]:
    def diff(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, base.metadata))

    return diff


@pytest.mark.parametrize("service", WITH_DATABASE, ids=lambda service: service.name)
async def test_migrations_match_the_models_and_downgrade(
    service: Service, postgres_server_url: str
) -> None:
    from alembic import command

    base = importlib.import_module(f"{service.package}.models").Base
    url = await asyncio.to_thread(create_test_database, postgres_server_url, service.package)
    engine = create_async_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(_schema_diff(base)) == []
        config = alembic_config(service.package, url)
        await asyncio.to_thread(command.downgrade, config, "base")
        await asyncio.to_thread(command.upgrade, config, "head")
        async with engine.connect() as connection:
            assert await connection.run_sync(_schema_diff(base)) == []
    finally:
        await engine.dispose()
