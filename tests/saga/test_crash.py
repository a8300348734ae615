"""SIGKILL the orders service while 100 checkouts run, restart it, and audit the outcome.

The orders service runs as its own uvicorn process (``python -m orders_service serve``
in its own session, as the stack runner starts it) against the session's real inventory service and
provider sandboxes. Checkouts mix successes with out-of-stock orders, declined
payments and rejected parcels; the sandboxes answer slowly enough that sagas are
mid-flight when the process dies. Clients whose request died retry with the same
``Idempotency-Key``, as a real client would. Afterwards every order must have settled,
stock must add up to the confirmed orders exactly, and the payment ledger must show
money taken at most once per order and returned for every order that did not go
through. The random seed is printed, so a failing run can be replayed.
"""

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from storefront_stack.platform import REPO_ROOT
from storefront_stack.processes import free_port
from storefront_stack.pytest_plugin import create_test_database

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

CHECKOUTS = 100
KILLS = 2
USERS = 10
TERMINAL = {"CONFIRMED", "FAILED", "CANCELLED"}
ADDRESS = {
    "name": "Grace Hopper",
    "line1": "1 Compiler Way",
    "city": "Arlington",
    "postal_code": "22201",
    "country": "US",
}


class OrdersProcess:
    """The orders service as a separate process that can be killed and started again."""

    def __init__(self, env: dict[str, str], port: int, log_file: Path) -> None:
        self.env = {**os.environ, **env}
        self.url = f"http://127.0.0.1:{port}"
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        """Start it as the stack runner does: its own session, output to a log file."""
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "orders_service", "serve"],
                env=self.env,
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.starts += 1

    async def wait_live(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(base_url=self.url, timeout=1.0) as client:
            while True:
                assert self.process is not None
                assert self.process.poll() is None, self.log_tail()
                try:
                    if (await client.get("/health/live")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "orders did not start\n" + self.log_tail()
                await asyncio.sleep(0.1)

    async def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, leases stay held until they expire."""
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        await asyncio.to_thread(self.process.wait, 10)

    def stop(self) -> None:
        """SIGTERM (a clean shutdown), SIGKILL if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_file.read_text().splitlines()[-lines:])
        except OSError:
            return "(no log)"


@pytest.fixture
def orders_process(
    keys: Any,
    postgres_server_url: str,
    redis_url: str,
    inventory_server: Any,
    payments_server: Any,
    shipping_server: Any,
    jwks_server: Any,
    tmp_path: Path,
) -> Iterator[OrdersProcess]:
    port = free_port()
    env = {
        "STOREFRONT_ENVIRONMENT": "development",
        "STOREFRONT_LOG_JSON": "true",
        "STOREFRONT_JWKS_URL": f"{jwks_server.url}/.well-known/jwks.json",
        **keys.services.env("orders"),
        "PYTHONUNBUFFERED": "1",
        "ORDERS_HOST": "127.0.0.1",
        "ORDERS_PORT": str(port),
        "ORDERS_WORKERS": "1",
        "ORDERS_DATABASE_URL": create_test_database(postgres_server_url, "orders_service"),
        "ORDERS_REDIS_URL": redis_url,
        "ORDERS_INVENTORY_URL": inventory_server.url,
        "ORDERS_PAYMENTS_API_URL": payments_server.url,
        "ORDERS_SHIPPING_API_URL": shipping_server.url,
        "ORDERS_PAYMENTS_TIMEOUT_S": "3",
        "ORDERS_SHIPPING_TIMEOUT_S": "3",
        "ORDERS_INVENTORY_TIMEOUT_S": "5",
        "ORDERS_RETRY_BACKOFF_INITIAL_S": "0.02",
        "ORDERS_RETRY_BACKOFF_MAX_S": "0.1",
        # Short leases: a killed replica's sagas are taken over within seconds.
        "ORDERS_SAGA_LEASE_TTL_S": "3",
        # Fewer sagas at once than the pool has connections for their steps and heartbeats.
        "ORDERS_MAX_CONCURRENT_SAGAS": "40",
        "ORDERS_RECOVERY_INTERVAL_S": "0.5",
        "ORDERS_CHECKOUT_WAIT_S": "1.5",
        "ORDERS_COMPENSATION_RETRY_INITIAL_S": "0.2",
        "ORDERS_COMPENSATION_RETRY_MAX_S": "1",
        "ORDERS_OUTBOX_POLL_INTERVAL_S": "0.2",
        "ORDERS_DB_POOL_SIZE": "20",
        "ORDERS_DB_MAX_OVERFLOW": "10",
        "ORDERS_DB_POOL_TIMEOUT_S": "30",
        "ORDERS_PAGE_SIZE_MAX": str(CHECKOUTS),
    }
    # CRASH_LOG keeps the service's log somewhere that outlives pytest's tmp_path rotation.
    log_file = Path(os.environ.get("CRASH_LOG") or tmp_path / "orders.log")
    process = OrdersProcess(env, port, log_file)
    yield process
    process.stop()


@dataclass
class Outcome:
    key: str
    user: str
    order: dict[str, Any]
    died: int  # requests of this client that were cut off when the process died


async def _client(
    http: httpx.AsyncClient,
    tokens: dict[str, dict[str, str]],
    *,
    number: int,
    items: list[dict[str, Any]],
    delay: float,
    settle_by: float,
) -> Outcome:
    """One shopper: checkout, retried with its key while the service is down; then poll."""
    user = f"crash-user-{number % USERS}"
    key = f"crash-{number}"
    headers = {**tokens[user], "Idempotency-Key": key}
    body = {
        "items": items,
        "shipping_address": ADDRESS,
        "payment": {"method": "card", "token": "tok_visa"},
    }
    await asyncio.sleep(delay)
    died = 0
    while True:
        assert time.monotonic() < settle_by, f"{key}: no answer to the checkout"
        try:
            response = await http.post("/api/v1/orders", json=body, headers=headers)
        except httpx.ConnectError:  # down: retry until it is back
            await asyncio.sleep(random.uniform(0.1, 0.3))
            continue
        except httpx.TransportError:  # cut off mid-request: the order may exist already
            died += 1
            await asyncio.sleep(random.uniform(0.1, 0.3))
            continue
        if response.status_code in (502, 503, 504):
            await asyncio.sleep(random.uniform(0.1, 0.3))
            continue
        assert response.status_code in (200, 201, 202), response.text
        order: dict[str, Any] = response.json()
        break
    while order["status"] not in TERMINAL:
        assert time.monotonic() < settle_by, f"{key}: order {order['id']} is {order['status']}"
        await asyncio.sleep(random.uniform(0.5, 1.0))  # polls must not starve the sagas
        try:
            response = await http.get(f"/api/v1/orders/{order['id']}", headers=tokens[user])
        except httpx.TransportError:
            continue
        if response.status_code == 200:
            order = response.json()
    return Outcome(key=key, user=user, order=order, died=died)


async def _inventory_product(
    inventory: httpx.AsyncClient, admin: dict[str, str], sku: str, on_hand: int
) -> dict[str, Any]:
    body = {
        "sku": sku,
        "name": f"Crash test {sku}",
        "brand": "Acme",
        "category": "tests",
        "price": 1000,
        "currency": "EUR",
        "initial_stock": on_hand,
    }
    response = await inventory.post("/api/v1/admin/products", json=body, headers=admin)
    assert response.status_code == 201, response.text
    product: dict[str, Any] = response.json()
    return product


async def test_checkouts_survive_repeated_kills_of_the_orders_process(
    orders_process: OrdersProcess,
    keys: Any,
    inventory_server: Any,
    payments_server: Any,
    shipping_server: Any,
) -> None:
    seed = int(os.environ.get("CRASH_SEED", time.time_ns() % 1_000_000))
    print(f"crash test seed: {seed}")
    rng = random.Random(seed)
    admin = keys.user("admin-crash", "admin")
    tokens = {f"crash-user-{n}": keys.user(f"crash-user-{n}") for n in range(USERS)}
    tag = f"{seed:06d}"

    async with (
        httpx.AsyncClient(base_url=inventory_server.url, timeout=30) as inventory,
        httpx.AsyncClient(base_url=payments_server.url, timeout=30) as payments,
        httpx.AsyncClient(base_url=shipping_server.url, timeout=30) as shipping,
    ):
        await payments.post("/reset")
        await shipping.post("/reset")
        # One sku with plenty, two that run out: out-of-stock failures under contention.
        plenty, scarce_a, scarce_b = (f"CRASH-{tag}-{name}" for name in ("PLENTY", "A", "B"))
        stock = {plenty: 1000, scarce_a: 25, scarce_b: 12}
        products = {
            sku: await _inventory_product(inventory, admin, sku, units)
            for sku, units in stock.items()
        }
        # Declines and rejected parcels fail some sagas before and after the capture; the
        # latency keeps sagas in flight when the process dies.
        response = await payments.post(
            "/faults",
            json={
                "mode": "decline",
                "rate": 0.15,
                "latency_ms": 60,
                "operations": ["authorize", "capture"],
            },
        )
        assert response.status_code == 200, response.text
        response = await shipping.post(
            "/faults",
            json={"mode": "reject", "rate": 0.15, "latency_ms": 60, "operations": ["create"]},
        )
        assert response.status_code == 200, response.text

        started = time.monotonic()
        orders_process.start()
        await orders_process.wait_live()
        timings = [f"live {time.monotonic() - started:.1f}s"]
        settle_by = time.monotonic() + 150
        limits = httpx.Limits(max_connections=CHECKOUTS, max_keepalive_connections=CHECKOUTS)
        async with httpx.AsyncClient(
            base_url=orders_process.url, timeout=30, limits=limits
        ) as http:
            clients = []
            for number in range(CHECKOUTS):
                chosen = rng.choice(([plenty], [plenty], [scarce_a], [plenty, scarce_b]))
                items = [{"sku": sku, "qty": rng.randint(1, 2)} for sku in chosen]
                clients.append(
                    asyncio.create_task(
                        _client(
                            http,
                            tokens,
                            number=number,
                            items=items,
                            delay=rng.uniform(0, 4.0),
                            settle_by=settle_by,
                        )
                    )
                )
            for _ in range(KILLS):
                await asyncio.sleep(rng.uniform(0.5, 2.0))
                await orders_process.kill()
                timings.append(f"killed {time.monotonic() - started:.1f}s")
                orders_process.start()
                await orders_process.wait_live()
                timings.append(f"live {time.monotonic() - started:.1f}s")
            outcomes: list[Outcome] = await asyncio.gather(*clients)
            timings.append(f"settled {time.monotonic() - started:.1f}s")

            listed = await http.get(
                "/api/v1/admin/orders", params={"size": CHECKOUTS}, headers=admin
            )
            assert listed.status_code == 200, listed.text
            every_order = listed.json()
            details = {
                o["id"]: o
                for o in await asyncio.gather(
                    *(_admin_order(http, admin, outcome.order["id"]) for outcome in outcomes)
                )
            }

        ledger = (await payments.get("/ledger")).json()["entries"]
        shipments = (await shipping.get("/shipments")).json()
        final_stock = {
            sku: (
                await inventory.get(f"/api/v1/admin/products/{product['id']}", headers=admin)
            ).json()["stock"]
            for sku, product in products.items()
        }
        await payments.post("/faults", json={"mode": "ok"})
        await shipping.post("/faults", json={"mode": "ok"})

    statuses = Counter(o.order["status"] for o in outcomes)
    reasons = Counter(o.order["reason"] for o in outcomes if o.order["reason"])
    died = sum(o.died for o in outcomes)
    print(f"{', '.join(timings)}; cut-off requests: {died}; {dict(statuses)} {dict(reasons)}")
    assert orders_process.starts == KILLS + 1
    assert died > 0, "no request was in flight when the process was killed"

    # One order per key: the retries of a dead request found the order it had created.
    assert len({o.order["id"] for o in outcomes}) == CHECKOUTS
    assert every_order["total"] == CHECKOUTS
    assert {o["id"] for o in every_order["items"]} == {o.order["id"] for o in outcomes}
    for outcome in outcomes:
        detail = details[outcome.order["id"]]
        assert detail["user_id"] == outcome.user
        # Every accepted order settled, and nothing holds its saga any more.
        assert detail["status"] in TERMINAL, detail
        assert detail["lease_owner"] is None, detail
        assert detail["status"] != "CANCELLED"  # nobody cancelled
    assert statuses["CONFIRMED"] > 0
    assert statuses["FAILED"] > 0

    # Stock is conserved exactly: sold = confirmed quantities, nothing left reserved.
    sold: dict[str, int] = defaultdict(int)
    for outcome in outcomes:
        if outcome.order["status"] == "CONFIRMED":
            for line in outcome.order["lines"]:
                sold[line["sku"]] += line["qty"]
    for sku, units in stock.items():
        assert final_stock[sku]["reserved"] == 0, (sku, final_stock[sku])
        assert final_stock[sku]["on_hand"] == units - sold[sku], (sku, final_stock[sku])

    # Money: at most one authorization and one capture per order; a confirmed order was
    # captured in full; a failed one had its capture refunded or its authorization voided.
    by_order: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entry in ledger:
        by_order[entry["order_id"]].append(entry)
    assert set(by_order) <= set(details)
    for order_id, order in details.items():
        entries = by_order.get(order_id, [])
        count = Counter(e["kind"] for e in entries)
        amount = {kind: sum(e["amount"] for e in entries if e["kind"] == kind) for kind in count}
        assert count["authorization"] <= 1, entries
        assert count["capture"] <= 1, entries
        if order["status"] == "CONFIRMED":
            assert count["capture"] == 1, (order_id, entries)
            assert amount["capture"] == order["total"], (order_id, entries)
            assert count["refund"] == count["void"] == 0, (order_id, entries)
        elif count["capture"]:
            assert amount.get("refund", 0) == amount["capture"], (order_id, entries)
        elif count["authorization"]:
            assert count["void"] == 1, (order_id, entries)

    # Parcels: one live shipment per confirmed order, none left for a failed one.
    live = Counter(s["order_id"] for s in shipments if s["status"] != "cancelled")
    for order_id, order in details.items():
        assert live[order_id] == (1 if order["status"] == "CONFIRMED" else 0), order_id


async def _admin_order(
    http: httpx.AsyncClient, admin: dict[str, str], order_id: str
) -> dict[str, Any]:
    for attempt in range(3):
        try:
            response = await http.get(f"/api/v1/admin/orders/{order_id}", headers=admin)
            break
        except httpx.ReadError:
            # A pooled connection left idle while the checkouts settled can be closed by
            # the server (keep-alive timeout) just as it is reused: a GET is safe to resend.
            if attempt == 2:
                raise
    assert response.status_code == 200, response.text
    order: dict[str, Any] = response.json()
    return order
