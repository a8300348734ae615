"""What the end-to-end tests share: the session platform's gateway and a client to it."""

from collections.abc import AsyncIterator

import httpx
import pytest

from storefront_stack.platform import Platform


@pytest.fixture(scope="session")
def gateway(platform: Platform) -> str:
    """The URL of the session platform's gateway (nginx)."""
    assert platform.endpoints is not None
    return platform.endpoints.gateway_url


@pytest.fixture
async def client(gateway: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client to the gateway, patient enough for a loaded machine (15 s a request)."""
    async with httpx.AsyncClient(base_url=gateway, timeout=15) as client:
        yield client
