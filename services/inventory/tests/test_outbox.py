"""The outbox: events leave right after the commit, and a Redis outage loses nothing."""

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import text

from storefront_stack import infra
from storefront_stack.processes import free_port

STREAM = "inventory.events"
AUDIT = "audit.events"


async def _wait_for(predicate: Any, *, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def _outbox_ids(
    inventory: Any, *, unpublished: bool = False, stream: str | None = None
) -> list[str]:
    sql = "SELECT id::text FROM outbox_event WHERE true"
    if unpublished:
        sql += " AND published_at IS NULL"
    if stream is not None:
        sql += " AND stream = :stream"
    async with inventory.engine.connect() as connection:
        rows = await connection.execute(text(sql), {"stream": stream})
        return [row[0] for row in rows.all()]


async def test_a_commit_wakes_the_relay_without_waiting_for_its_poll(
    start_inventory: Any, redis_url: str
) -> None:
    async with start_inventory(redis_url, outbox_poll_interval_s=60) as inventory:
        await asyncio.sleep(0.2)  # the relay's first round has run and it now sleeps
        product = await inventory.create_product(on_hand=2)

        async def relayed() -> bool:
            return await inventory.redis.xlen(STREAM) >= 2

        started = asyncio.get_running_loop().time()
        await _wait_for(relayed, timeout=5)
        assert asyncio.get_running_loop().time() - started < 2
        entries = await inventory.redis.xrange(STREAM)
        types = [fields["type"] for _, fields in entries if product["sku"] in fields["envelope"]]
        assert types == ["product.upserted", "stock.changed"]


async def test_events_staged_while_redis_is_down_arrive_exactly_once_when_it_returns(
    start_inventory: Any, tmp_path: Path
) -> None:
    port = free_port()
    data_dir = tmp_path / "redis"
    server = infra.start_redis(data_dir, port, log_file=tmp_path / "redis.log", persistent=True)
    url = server.url
    probe = Redis.from_url(url, decode_responses=True)
    try:
        async with start_inventory(url, outbox_poll_interval_s=0.05) as inventory:
            product = await inventory.create_product(on_hand=20)

            async def first_relayed() -> bool:
                return await probe.xlen(STREAM) == 2

            await _wait_for(first_relayed)
            await probe.aclose()

            await asyncio.to_thread(server.stop)
            # Redis is gone; the write model keeps working and stages its events.
            product_url = f"/api/v1/admin/products/{product['id']}"
            for delta in (5, -3, 7):
                adjusted = await inventory.adjust_stock(product, delta, "outage")
                assert adjusted.status_code == 200, adjusted.text
            reserved = await inventory.reserve([{"sku": product["sku"], "qty": 4}])
            assert reserved.status_code == 200, reserved.text
            patched = await inventory.client.patch(
                product_url, json={"price": 999}, headers={**inventory.admin, "If-Match": '"1"'}
            )
            assert patched.status_code == 200, patched.text
            await asyncio.sleep(0.5)  # the relay tries, fails, backs off
            pending = await _outbox_ids(inventory, unpublished=True, stream=STREAM)
            assert len(pending) == 5
            # The staff actions' audit entries wait in the same outbox (3 adjustments, 1 edit).
            assert len(await _outbox_ids(inventory, unpublished=True, stream=AUDIT)) == 4

            server = await asyncio.to_thread(
                infra.start_redis, data_dir, port, log_file=tmp_path / "redis2.log", persistent=True
            )
            probe = Redis.from_url(url, decode_responses=True)

            async def all_published() -> bool:
                return not await _outbox_ids(inventory, unpublished=True)

            await _wait_for(all_published)
            entries = await probe.xrange(STREAM)
    finally:
        await probe.aclose()
        await asyncio.to_thread(server.stop)

    counts = Counter(fields["id"] for _, fields in entries)
    assert all(n == 1 for n in counts.values()), counts
    assert set(pending) <= set(counts)
    assert len(counts) == 7  # 2 before the outage + 5 staged during it
    types = [fields["type"] for _, fields in entries]
    assert types[:2] == ["product.upserted", "stock.changed"]
    assert Counter(types[2:]) == {"stock.changed": 4, "product.upserted": 1}
