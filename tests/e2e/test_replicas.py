"""Two replicas of every service; one of orders, inventory, notifications and ws-gateway
killed (SIGKILL) under a steady checkout load (issue 20, docs/design.md §8).

No effect is lost or doubled: every checkout ends in a terminal state (a saga the killed
orders replica was running is resumed by the other once its lease runs out), stock and
money add up, every receipt reaches the chat (once, but for the messages of the batch
the killed notifications replica may have had in flight: at least once, each such
duplicate a claim taken again after its lease), a socket on the killed
ws-gateway reconnects to the other one and gets what happened next, and the dead
replicas' stream consumers are claimed (nothing left pending) and removed from their
groups.
"""

import asyncio
import json
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from websockets.typing import Subprotocol

from orders_service.domain.sharding import by_user_hash
from storefront_stack.logins import new_phone, telegram_login, user_token
from storefront_stack.platform import Platform, PlatformOptions, running_platform
from storefront_stack.pytest_plugin import ONE_CLIENT_ADDRESS_LIMITS
from storefront_stack.shop import create_product, order_body, product_body
from storefront_stack.topology import SERVICES

pytestmark = pytest.mark.e2e

KILLED = ("orders", "inventory", "notifications", "ws-gateway")
CUSTOMERS = 3
LOAD_S = 8.0
KILL_AFTER_S = 2.5
SETTLED = {"CONFIRMED", "FAILED", "CANCELLED"}
STOCK = 500
PRICE = 1250


async def _reclaimed_receipts(url: str) -> int:
    """Receipts claimed again after a claim's lease ran out (notifications' database)."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            found = await connection.scalar(
                text(
                    "SELECT count(*) FROM notification_log WHERE kind = 'receipt' AND attempts > 1"
                )
            )
            return int(found or 0)
    finally:
        await engine.dispose()


async def _orders_in(url: str) -> dict[str, str]:
    """Order id -> user id of every order in one of orders' databases."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(text("SELECT id::text, user_id FROM customer_order"))
            return {row.id: row.user_id for row in rows}
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def replicated(stack_dir: Path, elasticsearch_url: str) -> Iterator[Platform]:
    """The platform with two processes of every service, on its own PostgreSQL and Redis.

    Leases, claim times and the dead-consumer threshold are shortened so failover
    happens within the test; the mechanisms are the production ones.
    """
    options = PlatformOptions.for_tests(
        stack_dir / "replicas",
        elasticsearch_url=elasticsearch_url,
        replicas={service.name: 2 for service in SERVICES},
        # Orders' users split over two databases: each replica runs a saga runner,
        # recovery scan and outbox relay per database, and the kill must lose nothing
        # on either.
        orders_databases=2,
        env_overrides={
            "GATEWAY_AUTH_RATE": "50r/s",
            "GATEWAY_AUTH_BURST": "100",
            **ONE_CLIENT_ADDRESS_LIMITS,
            # Its own index next to the session platform's, in the shared Elasticsearch.
            "CATALOG_INDEX_ALIAS": f"products_replicas_{uuid.uuid4().hex[:6]}",
            "CATALOG_EVENTS_CLAIM_IDLE_MS": "3000",
            "CATALOG_EVENTS_DEAD_CONSUMER_IDLE_MS": "5000",
            "ORDERS_SAGA_LEASE_TTL_S": "3",
            "ORDERS_RECOVERY_INTERVAL_S": "1",
            "NOTIFICATIONS_CONSUMER_CLAIM_IDLE_MS": "4000",
            "NOTIFICATIONS_CLAIM_LEASE_S": "3",
            "NOTIFICATIONS_CONSUMER_DEAD_IDLE_MS": "5000",
            "WS_GATEWAY_RELAY_CLAIM_IDLE_MS": "3000",
            "WS_GATEWAY_RELAY_DEAD_CONSUMER_IDLE_MS": "5000",
        },
    )
    with running_platform(options) as running:
        yield running


def _order(sku: str) -> dict[str, Any]:
    return order_body(sku, token="tok_replicas")


async def _until(check: Any, *, within_s: float, every_s: float = 0.25) -> None:
    deadline = time.monotonic() + within_s
    while not await check():
        assert time.monotonic() < deadline, f"{check.__name__}: not true within {within_s}s"
        await asyncio.sleep(every_s)


async def _open_sockets(replica_url: str, ws_url: str, token: str) -> Any:
    """Sockets through the gateway until one lands on the replica at ``replica_url``."""

    async def on_replica() -> float:
        metrics = (await client.get(f"{replica_url}/metrics")).text
        line = next(ln for ln in metrics.splitlines() if ln.startswith("ws_open_sockets "))
        return float(line.split()[1])

    opened: list[Any] = []
    async with httpx.AsyncClient(timeout=5) as client:
        for _ in range(12):
            before = await on_replica()
            sock = await websockets.connect(
                ws_url, subprotocols=[Subprotocol("bearer"), Subprotocol(token)]
            )
            assert json.loads(await sock.recv())["type"] == "welcome"
            if await on_replica() > before:
                return sock, opened
            opened.append(sock)
    raise AssertionError("nginx never sent a socket to the first ws-gateway replica")


async def test_killing_one_replica_of_each_loses_and_doubles_nothing(
    replicated: Platform,
) -> None:
    platform = replicated
    assert platform.endpoints is not None
    endpoints = platform.endpoints
    gateway = endpoints.gateway_url
    admin = {"Authorization": f"Bearer {user_token(platform.platform_env, 'admin')}"}
    sku = f"REPLICAS-{uuid.uuid4().hex[:8].upper()}"
    victims = {name: platform.processes[f"{name}-1"] for name in KILLED}
    victim_pids = {name: process.process.pid for name, process in victims.items()}  # type: ignore[union-attr]
    host = socket.gethostname()

    async with (
        httpx.AsyncClient(base_url=gateway, timeout=30) as client,
        Redis.from_url(endpoints.redis_url, decode_responses=True) as redis,
    ):
        body = product_body(sku, name=f"Replica kettle {sku}", price=PRICE, stock=STOCK)
        product_id = (await create_product(client, admin, body))["id"]

        customers: list[tuple[dict[str, str], int, str]] = []
        for n in range(CUSTOMERS):
            phone = new_phone()
            chat_id = 800_000 + n * 10_000 + uuid.uuid4().int % 10_000
            tokens = await telegram_login(client, phone, chat_id)
            access = tokens["access_token"]
            customers.append(({"Authorization": f"Bearer {access}"}, chat_id, access))

        # A socket of the first customer on the ws-gateway replica about to be killed.
        ws_url = gateway.replace("http://", "ws://", 1) + "/ws"
        victim_url = endpoints.replica_urls("ws-gateway")[0]
        doomed, others = await _open_sockets(victim_url, ws_url, customers[0][2])
        for other in others:
            await other.close()

        orders: dict[str, int] = {}  # order id -> customer
        answers: list[int] = []

        async def checkout(customer: int) -> None:
            headers = {**customers[customer][0], "Idempotency-Key": str(uuid.uuid4())}
            # A replica killed mid-request answers 503 (never retried by nginx: POST);
            # the client retries with the same key and gets the one order.
            for _ in range(20):
                response = await client.post("/api/v1/orders", headers=headers, json=_order(sku))
                answers.append(response.status_code)
                if response.status_code in (200, 201, 202):
                    orders[response.json()["id"]] = customer
                    return
                assert response.status_code in (409, 502, 503, 504), response.text
                if response.status_code != 409:
                    assert response.headers["content-type"] == "application/problem+json"
                await asyncio.sleep(0.5)
            raise AssertionError(f"checkout never accepted: {answers[-5:]}")

        async def load(customer: int, until: float) -> None:
            while time.monotonic() < until:
                await checkout(customer)

        async def kill_later() -> None:
            await asyncio.sleep(KILL_AFTER_S)
            for name in KILLED:
                platform.stop_service(f"{name}-1", kill=True)

        until = time.monotonic() + LOAD_S
        await asyncio.gather(*(load(c, until) for c in range(CUSTOMERS)), kill_later())
        assert all(not process.running for process in victims.values())

        # The socket on the killed ws-gateway is gone; the client reconnects (through
        # the gateway, which now finds only the live replica) and hears what follows.
        with pytest.raises(websockets.ConnectionClosed):
            async with asyncio.timeout(10):
                while True:
                    await doomed.recv()
        async with websockets.connect(
            ws_url, subprotocols=[Subprotocol("bearer"), Subprotocol(customers[0][2])]
        ) as again:
            assert json.loads(await again.recv())["type"] == "welcome"
            await checkout(0)
            latest = list(orders)[-1]
            async with asyncio.timeout(30):
                while True:
                    data = json.loads(await again.recv()).get("data", {})
                    if data.get("order_id") == latest and data.get("status") in SETTLED:
                        break

        async def settled() -> bool:
            for order_id, customer in orders.items():
                got = await client.get(f"/api/v1/orders/{order_id}", headers=customers[customer][0])
                if got.json()["status"] not in SETTLED:
                    return False
            return True

        await _until(settled, within_s=45)
        statuses = {
            order_id: (
                await client.get(f"/api/v1/orders/{order_id}", headers=customers[customer][0])
            ).json()["status"]
            for order_id, customer in orders.items()
        }
        confirmed = {order_id for order_id, status in statuses.items() if status == "CONFIRMED"}
        assert confirmed, statuses

        # Stock: on hand went down by exactly the confirmed orders; nothing stays held.
        level = (await client.get(f"/api/v1/admin/products/{product_id}", headers=admin)).json()[
            "stock"
        ]
        assert level == {
            "on_hand": STOCK - len(confirmed),
            "reserved": 0,
            "available": STOCK - len(confirmed),
        }

        # Money: each confirmed order captured its total once; the others kept nothing.
        payments = (await client.get(f"{endpoints.sandbox_url('payments')}/v1/payments")).json()
        kept: dict[str, int] = {}
        for payment in payments:
            kept[payment["order_id"]] = (
                kept.get(payment["order_id"], 0)
                + payment["captured_amount"]
                - payment["refunded_amount"]
            )
        for order_id in orders:
            assert kept.get(order_id, 0) == (PRICE if order_id in confirmed else 0), order_id

        # Receipts: once the notifications group has nothing left (the dead replica's
        # entries claimed and handled), each captured order has its receipt and no other
        # order has one. A message Telegram accepted just before its replica was killed,
        # and before the replica recorded it sent, goes out again once its claim's lease
        # runs out (docs/notifications.md "What this guarantees": at least once, never
        # lost). The killed replica sends a batch's messages together and records them
        # with one statement after the last, so several receipts of its last batch may
        # come twice: each is a row the live replica claimed again after the lease.
        captured = {p["order_id"] for p in payments if p["captured_amount"]}

        async def notified() -> bool:
            groups = {g["name"]: g for g in await redis.xinfo_groups("orders.events")}
            group = groups["notifications"]
            last = (await redis.xinfo_stream("orders.events"))["last-generated-id"]
            return bool(group["pending"] == 0 and group["last-delivered-id"] == last)

        await _until(notified, within_s=45)
        twice = 0
        for customer, (_headers, chat_id, _token) in enumerate(customers):
            texts = [
                m["text"]
                for m in (
                    await client.get("/sandbox/telegram/messages", params={"chat_id": chat_id})
                ).json()
            ]
            for order_id, owner in orders.items():
                if owner != customer:
                    continue
                receipts = sum("Receipt" in t and order_id in t for t in texts)
                if order_id in captured:
                    assert receipts >= 1, (order_id, receipts)
                    twice += receipts - 1
                else:
                    assert receipts == 0, (order_id, receipts)
        notifications_env = platform.service_env(platform.replica_names("notifications")[0])
        reclaimed = await _reclaimed_receipts(notifications_env["NOTIFICATIONS_DATABASE_URL"])
        assert twice <= reclaimed, f"{twice} receipts went out twice, {reclaimed} reclaimed"

        # The dead replicas' consumers: nothing pending, and removed from their groups
        # (notifications names its consumer host-pid, ws-gateway host-pid-random).
        dead = {group: f"{host}-{victim_pids[group]}" for group in ("notifications", "ws-gateway")}

        async def consumers_cleaned() -> bool:
            for group, prefix in dead.items():
                consumers = await redis.xinfo_consumers("orders.events", group)
                names = [c["name"] for c in consumers]
                if any(name == prefix or name.startswith(prefix + "-") for name in names):
                    return False
                if any(c["pending"] for c in consumers) or len(consumers) != 1:
                    return False
            return True

        await _until(consumers_cleaned, within_s=30)

    # Each order is in exactly one of orders' two databases: its customer's.
    orders_env = platform.service_env(platform.replica_names("orders")[0])
    urls = orders_env["ORDERS_DATABASE_SHARDS"].split(",")
    assert len(urls) == 2
    held = {url: await _orders_in(url) for url in urls}
    for order_id in orders:
        (where,) = [url for url in urls if order_id in held[url]]
        assert where == by_user_hash(held[where][order_id], urls)
