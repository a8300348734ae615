"""Real gateway replicas on free ports, sharing one real Redis, with test-minted tokens."""

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
import uvicorn
from redis.asyncio import Redis

from jwt_core_lib import SigningKey, StaticKeySource, TokenIssuer, TokenVerifier
from storefront_kit.http import create_http_client
from storefront_kit.redis import create_redis
from storefront_kit.security import build_security
from storefront_kit.settings import PlatformSettings
from storefront_stack.processes import free_port
from storefront_stack.serving import local_server, start_in_thread
from ws_gateway_service.app import create_app
from ws_gateway_service.settings import WsGatewaySettings

ISSUER = "test-auth"
AUDIENCE = "storefront"


@dataclass
class Tokens:
    key: SigningKey

    def user(self, user_id: str, *roles: str, ttl: float = 600) -> str:
        issuer = TokenIssuer(signing_key=self.key, issuer=ISSUER)
        return issuer.issue(
            subject=user_id,
            audience=AUDIENCE,
            ttl=timedelta(seconds=ttl),
            roles=roles or ("customer",),
        )


@pytest.fixture(scope="session")
def tokens() -> Tokens:
    return Tokens(SigningKey.generate())


@dataclass
class Replica:
    url: str
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/ws"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def start_replica(settings: WsGatewaySettings, tokens: Tokens) -> Replica:
    app = create_app(settings)
    # The user verifier trusts the test key instead of fetching auth's JWKS.
    security = build_security(settings, http_client=create_http_client())
    security.user_verifier = TokenVerifier(
        key_source=StaticKeySource([tokens.key]), issuer=ISSUER, audience=AUDIENCE
    )
    app.state.security = security
    server = local_server(app, settings.port, lifespan="on")  # as served
    thread = start_in_thread(server, "a ws-gateway replica", timeout_s=15)
    return Replica(f"http://127.0.0.1:{settings.port}", server, thread)


def replica_settings(redis_url: str, **overrides: object) -> WsGatewaySettings:
    return WsGatewaySettings(
        port=free_port(),
        redis_url=redis_url,
        platform=PlatformSettings(jwt_issuer=ISSUER, jwt_audience=AUDIENCE),
        **overrides,  # type: ignore[arg-type]
    )


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    """A client of the test's (emptied) Redis, closed afterwards."""
    client = create_redis(redis_url, socket_timeout=None, decode_responses=False)
    yield client
    await client.aclose()


@pytest.fixture
def replicas(redis_url: str, tokens: Tokens) -> Iterator[list[Replica]]:
    started = [
        start_replica(replica_settings(redis_url, heartbeat_interval_s=0.5), tokens)
        for _ in range(2)
    ]
    yield started
    for replica in started:
        replica.stop()


async def wait_until(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")
