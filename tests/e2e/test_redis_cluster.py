"""The whole platform on a three-master Redis Cluster (docs/redis.md).

Every service gets ``redis+cluster://...`` as its Redis URL. A customer logs in through
Telegram (OTP codes, link tokens, rate limits, the chat cache), watches a socket
(presence, the per-user pub/sub channel), checks out (the outbox relays, the streams'
consumer groups, the breakers, the fraud counters) and finds the product by search (the
catalog listener and the search cache): the journey every Redis family takes part in.
"""

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from redis.asyncio import RedisCluster
from websockets.typing import Subprotocol

from storefront_kit.redis import create_redis
from storefront_stack.logins import new_phone, telegram_login, user_token
from storefront_stack.platform import Platform, PlatformOptions, running_platform
from storefront_stack.pytest_plugin import ONE_CLIENT_ADDRESS_LIMITS
from storefront_stack.shop import create_product, order_body, product_body

pytestmark = pytest.mark.e2e

SETTLED = {"CONFIRMED", "FAILED", "CANCELLED"}


@pytest.fixture(scope="module")
def on_cluster(
    stack_dir: Path, elasticsearch_url: str, redis_cluster_url: str
) -> Iterator[Platform]:
    """The platform with one process per service, its Redis the session's cluster."""
    options = PlatformOptions.for_tests(
        stack_dir / "on-cluster",
        redis_url=redis_cluster_url,
        elasticsearch_url=elasticsearch_url,
        env_overrides={
            **ONE_CLIENT_ADDRESS_LIMITS,
            # Its own index next to the session platform's, in the shared Elasticsearch.
            "CATALOG_INDEX_ALIAS": f"products_cluster_{uuid.uuid4().hex[:6]}",
        },
    )
    with running_platform(options) as running:
        yield running


async def _until(check: Any, *, within_s: float) -> Any:
    deadline = time.monotonic() + within_s
    while not (result := await check()):
        assert time.monotonic() < deadline, f"{check.__name__}: not true within {within_s}s"
        await asyncio.sleep(0.25)
    return result


async def test_a_login_a_checkout_and_a_search_on_a_redis_cluster(on_cluster: Platform) -> None:
    endpoints = on_cluster.endpoints
    assert endpoints is not None
    admin = {"Authorization": f"Bearer {user_token(on_cluster.platform_env, 'admin')}"}
    sku = f"CLUSTER-{uuid.uuid4().hex[:8].upper()}"
    async with httpx.AsyncClient(base_url=endpoints.gateway_url, timeout=30) as client:
        await create_product(
            client, admin, product_body(sku, name=f"Cluster kettle {sku}", price=1250, stock=10)
        )

        phone = new_phone()
        tokens = await telegram_login(client, phone, 900_000 + uuid.uuid4().int % 10_000)
        access = tokens["access_token"]
        ws_url = endpoints.gateway_url.replace("http://", "ws://", 1) + "/ws"
        async with websockets.connect(
            ws_url, subprotocols=[Subprotocol("bearer"), Subprotocol(access)]
        ) as sock:
            assert json.loads(await sock.recv())["type"] == "welcome"
            placed = await client.post(
                "/api/v1/orders",
                headers={
                    "Authorization": f"Bearer {access}",
                    "Idempotency-Key": str(uuid.uuid4()),
                },
                json=order_body(sku, token="tok_cluster"),
            )
            assert placed.status_code in (200, 201, 202), placed.text
            order_id = placed.json()["id"]
            # The order's progress reaches the socket: outbox -> stream -> relay -> pub/sub.
            async with asyncio.timeout(60):
                while True:
                    data = json.loads(await sock.recv()).get("data", {})
                    if data.get("order_id") == order_id and data.get("status") in SETTLED:
                        break
        assert data["status"] == "CONFIRMED", data

        async def found() -> bool:
            response = await client.get("/api/v1/products/search", params={"q": sku})
            return response.status_code == 200 and response.json()["total"] == 1

        await _until(found, within_s=30)

    # The keys really are spread over the masters, and the tagged families kept one slot.
    redis = create_redis(endpoints.redis_url)
    try:
        assert isinstance(redis, RedisCluster)
        keys = [key async for key in redis.scan_iter(count=1000)]
        nodes = {redis.get_node_from_key(key).name for key in keys}
        assert len(nodes) == 3, nodes
        cache = [key for key in keys if key.startswith("{catalog}:")]
        assert cache, keys
        assert len({redis.keyslot(key) for key in cache}) == 1
        assert "orders.events" in keys
        assert "inventory.events" in keys
    finally:
        await redis.aclose()
