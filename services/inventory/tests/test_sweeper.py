"""Expired reservations are released by the sweeper, exactly once, even with several
sweepers and API releases racing for the same holds."""

import asyncio
import uuid
from typing import Any

from sqlalchemy import text

from inventory_service.service.reservations import sweep_expired
from storefront_kit.events import EventEnvelope


async def _wait_for(predicate: Any, *, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_a_reservation_left_alone_is_released_after_its_ttl_and_announced(
    inventory: Any,
) -> None:
    product = await inventory.create_product(on_hand=5)
    sku = product["sku"]
    order_id = uuid.uuid4()
    reserved = await inventory.reserve([{"sku": sku, "qty": 2}], order_id=order_id, ttl_s=1)
    assert reserved.status_code == 200
    assert (await inventory.stock(sku))["reserved"] == 2

    async def released() -> bool:
        return (await inventory.stock(sku))["reserved"] == 0

    await _wait_for(released)

    assert await inventory.stock(sku) == {"on_hand": 5, "reserved": 0, "version": 3}
    assert (
        await inventory.scalar(
            "SELECT status FROM reservation WHERE order_id = :id", {"id": order_id}
        )
        == "expired"
    )
    last = (await inventory.outbox("stock.changed", sku))[-1]
    assert last["data"] == {
        "sku": sku, "product_id": product["id"], "on_hand": 5, "reserved": 0, "available": 5,
        "version": 3,
    }  # fmt: skip

    async def in_stream() -> bool:
        entries = await inventory.redis.xrange("inventory.events")
        return any(fields["id"] == last["id"] for _, fields in entries)

    await _wait_for(in_stream)
    entries = await inventory.redis.xrange("inventory.events")
    streamed = [
        EventEnvelope.from_stream_fields(fields)
        for _, fields in entries
        if fields["id"] == last["id"]
    ]
    assert len(streamed) == 1
    assert streamed[0].type == "stock.changed"
    assert streamed[0].data["reserved"] == 0

    ref = {"order_id": str(order_id)}
    release = await inventory.client.post(
        "/internal/inventory/release", json=ref, headers=inventory.service
    )
    commit = await inventory.client.post(
        "/internal/inventory/commit", json=ref, headers=inventory.service
    )
    assert release.status_code == 200
    assert release.json()["status"] == "expired"
    assert commit.status_code == 409
    assert commit.json()["code"] == "reservation_state"
    assert (await inventory.stock(sku))["reserved"] == 0


async def test_concurrent_sweepers_and_releases_give_each_hold_back_exactly_once(
    start_inventory: Any, redis_url: str
) -> None:
    async with start_inventory(redis_url, background_tasks_enabled=False) as inventory:
        product = await inventory.create_product(on_hand=60)
        sku = product["sku"]
        orders = [uuid.uuid4() for _ in range(40)]
        for order_id in orders:
            response = await inventory.reserve([{"sku": sku, "qty": 1}], order_id=order_id)
            assert response.status_code == 200
        async with inventory.engine.begin() as connection:
            await connection.execute(
                text(
                    "UPDATE reservation SET expires_at = now() - interval '1 second'"
                    " WHERE order_id = ANY(:ids)"
                ),
                {"ids": orders},
            )
        sessionmaker = inventory.state.sessionmaker

        async def sweeper() -> int:
            total = 0
            while released := await sweep_expired(sessionmaker, batch_size=3):
                total += released
            return total

        async def release(order_id: uuid.UUID) -> Any:
            return await inventory.client.post(
                "/internal/inventory/release",
                json={"order_id": str(order_id)},
                headers=inventory.service,
            )

        results = await asyncio.gather(
            *(sweeper() for _ in range(4)), *(release(order_id) for order_id in orders[:10])
        )

        swept = sum(results[:4])
        releases = results[4:]
        assert all(r.status_code == 200 for r in releases)
        released_by_api = sum(1 for r in releases if r.json()["status"] == "released")
        assert {r.json()["status"] for r in releases} <= {"released", "expired"}
        assert swept + released_by_api == 40
        stock = await inventory.stock(sku)
        assert (stock["on_hand"], stock["reserved"]) == (60, 0)
        # One version per reserve, one per API release, one per sweeper batch touching the sku.
        assert 1 + 40 + released_by_api < stock["version"] <= 1 + 80
        statuses = await inventory.scalar(
            "SELECT json_object_agg(status, n) FROM (SELECT status, count(*) AS n"
            " FROM reservation WHERE order_id = ANY(:ids) GROUP BY status) s",
            {"ids": orders},
        )
        assert statuses == {
            k: v for k, v in {"expired": swept, "released": released_by_api}.items() if v
        }
        events = await inventory.outbox("stock.changed", sku)
        versions = [e["data"]["version"] for e in events]
        assert len(versions) == len(set(versions))  # one event per stock change
        assert max(versions) == stock["version"]
        latest = max(events, key=lambda e: e["data"]["version"])
        assert (latest["data"]["on_hand"], latest["data"]["reserved"]) == (60, 0)
