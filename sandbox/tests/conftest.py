"""Fixtures for the sandbox tests: in-process clients and real uvicorn servers."""

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import httpx
import pytest
from starlette.types import ASGIApp

from storefront_sandbox import payments as payments_module
from storefront_sandbox import shipping as shipping_module
from storefront_sandbox.settings import SandboxSettings
from storefront_stack.processes import free_port
from storefront_stack.serving import local_server, start_in_thread


@contextmanager
def serve(app: ASGIApp) -> Iterator[str]:
    """Run ``app`` under a real uvicorn on a free loopback port, in a thread; yield its URL."""
    port = free_port()
    # As served: the keep-alive outlasts the callers' expiry.
    server = local_server(app, port, lifespan="off", timeout_graceful_shutdown=1)
    thread = start_in_thread(server, f"uvicorn on {port}", timeout_s=10)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


ServeApp = Callable[[ASGIApp], AbstractContextManager[str]]


@pytest.fixture
def serve_app() -> ServeApp:
    """``with serve_app(app) as url:`` runs ``app`` under real uvicorn for the block."""
    return serve


@pytest.fixture
def payments_settings() -> SandboxSettings:
    """Short stalls, so a 'timeout' fault costs a test a fraction of a second."""
    return SandboxSettings(timeout_s=0.3)


@pytest.fixture
async def payments(payments_settings: SandboxSettings) -> AsyncIterator[httpx.AsyncClient]:
    """A client for a fresh payment provider, in process."""
    app = payments_module.create_app(payments_settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://payments") as client:
        yield client


@pytest.fixture
async def shipping() -> AsyncIterator[httpx.AsyncClient]:
    """A client for a fresh shipping provider, in process."""
    app = shipping_module.create_app(SandboxSettings(timeout_s=0.3))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://shipping") as client:
        yield client
