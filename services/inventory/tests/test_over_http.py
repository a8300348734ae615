"""The reservation hot path over real HTTP: a uvicorn server, many TCP connections."""

import asyncio
import uuid
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from inventory_service.app import create_app
from inventory_service.settings import InventorySettings
from storefront_stack.processes import free_port
from storefront_stack.serving import local_server, start


async def test_200_clients_over_real_connections_sell_exactly_the_stock(
    database_url: str, redis_url: str, keys: Any
) -> None:
    settings = InventorySettings(
        database_url=database_url,
        redis_url=redis_url,
        db_pool_size=20,
        db_max_overflow=10,
        db_pool_timeout_s=30.0,
    )
    app = create_app(settings)
    app.state.security = keys.security()
    port = free_port()
    # As served (storefront_kit.cli): uvicorn's default keep-alive of 5 s equals httpx's
    # idle expiry, and a slow run lost a request to that race (a reset on reuse).
    server = local_server(app, port, access_log=False)
    serving = await start(server)
    try:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=60
        ) as client:
            admin = {"Authorization": f"Bearer {keys.user_token('admin')}"}
            service = {"Authorization": f"Bearer {keys.service_token('orders')}"}
            sku = f"HTTP-{uuid.uuid4().hex[:10].upper()}"
            created = await client.post(
                "/api/v1/admin/products",
                json={"sku": sku, "name": "Hot item", "brand": "Acme", "category": "tests",
                      "price": 500, "currency": "EUR", "initial_stock": 37},
                headers=admin,
            )  # fmt: skip
            assert created.status_code == 201, created.text

            async def reserve() -> httpx.Response:
                body = {"order_id": str(uuid.uuid4()), "items": [{"sku": sku, "qty": 1}]}
                return await client.post("/internal/inventory/reserve", json=body, headers=service)

            responses = await asyncio.gather(*(reserve() for _ in range(200)))
            stock = await client.get(f"/internal/inventory/products/{sku}", headers=service)
    finally:
        server.should_exit = True
        await serving

    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == 37
    assert statuses.count(409) == 163
    for response in responses:
        if response.status_code == 409:
            assert response.json()["code"] == "insufficient_stock"
            assert response.json()["skus"] == [sku]
        else:
            assert response.json()["total"] == 500
    assert stock.json()["stock"] == {"on_hand": 37, "reserved": 37, "available": 0}
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            reserved_lines = (
                await connection.execute(
                    text("SELECT count(*) FROM reservation_line WHERE sku = :sku"), {"sku": sku}
                )
            ).scalar()
    finally:
        await engine.dispose()
    assert reserved_lines == 37
