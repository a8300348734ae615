"""A key per service, over real HTTP: who may call inventory's reserve, and a key rotation.

Inventory runs under uvicorn on real PostgreSQL and Redis, configured the way ``make run``
configures it (``INVENTORY_SERVICE_TOKEN_KEY`` and ``INVENTORY_SERVICE_TOKEN_CALLERS``
from :func:`storefront_stack.keys.service_token_env`); callers sign with their own keys.
"""

import asyncio
import itertools
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from pydantic_settings import SettingsConfigDict

from inventory_service.app import create_app
from inventory_service.settings import InventorySettings
from jwt_core_lib import SigningKey, StaticKeySource, TokenIssuer, TokenVerifier
from storefront_kit.http import create_http_client
from storefront_kit.security import ServiceSecurity, build_security
from storefront_kit.settings import ServiceSettings
from storefront_stack.keys import service_token_env
from storefront_stack.processes import free_port
from storefront_stack.pytest_plugin import create_test_database
from storefront_stack.serving import in_process, local_server, start

RESERVE = "/internal/inventory/reserve"
SERVICES = ["auth", "catalog", "inventory", "orders", "notifications", "ws-gateway"]


def caller(name: str, pem: str) -> ServiceSecurity:
    """What the kit builds for service ``name`` from its own ``<PREFIX>_SERVICE_TOKEN_KEY``."""
    prefix = name.upper().replace("-", "_") + "_"
    settings_class = type(
        f"{name}Settings",
        (ServiceSettings,),
        {
            "model_config": SettingsConfigDict(env_prefix=prefix, extra="ignore"),
            "service_name": name,
        },
    )
    settings: ServiceSettings = settings_class(service_token_key=pem)
    return build_security(settings, http_client=create_http_client())


@pytest.fixture(scope="module")
def database_url(postgres_server_url: str) -> str:
    return create_test_database(postgres_server_url, "inventory_service")


def inventory_settings(
    database_url: str, redis_url: str, own_pem: str, callers: dict[str, list[str]]
) -> InventorySettings:
    return InventorySettings(
        database_url=database_url,
        redis_url=redis_url,
        service_token_key=own_pem,  # type: ignore[arg-type]
        service_token_callers=callers,
        background_tasks_enabled=False,
        db_pool_size=10,
        db_pool_timeout_s=30.0,
    )


@dataclass
class Replica:
    """One inventory process: uvicorn on a free port, serving the real app."""

    url: str
    server: uvicorn.Server
    task: asyncio.Task[None]
    transport: httpx.AsyncHTTPTransport = field(default_factory=httpx.AsyncHTTPTransport)
    in_flight: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    async def stop(self) -> None:
        self.server.should_exit = True  # graceful: finishes what it has started
        await self.task
        await self.transport.aclose()


async def start_replica(settings: InventorySettings) -> Replica:
    port = free_port()
    server = local_server(create_app(settings), port, lifespan="on")
    task = await start(server, "an inventory replica")
    return Replica(url=f"http://127.0.0.1:{port}", server=server, task=task)


class Rotation(httpx.AsyncBaseTransport):
    """What a Kubernetes Service does for a rolling update: requests go to replicas in
    rotation; one leaves the rotation before it is stopped, after its last request."""

    def __init__(self, replicas: list[Replica]) -> None:
        self.replicas = list(replicas)
        self._next = itertools.count()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        replica = self.replicas[next(self._next) % len(self.replicas)]
        replica.in_flight += 1  # no await between choosing and counting
        replica.idle.clear()
        try:
            target = httpx.URL(replica.url).join(request.url.raw_path.decode())
            request.url = target
            response = await replica.transport.handle_async_request(request)
            await response.aread()
            return httpx.Response(
                response.status_code, headers=response.headers, content=response.content
            )
        finally:
            replica.in_flight -= 1
            if replica.in_flight == 0:
                replica.idle.set()

    async def replace(self, old: Replica, new: Replica) -> None:
        """Put ``new`` in rotation, take ``old`` out, let it finish, stop it."""
        self.replicas.append(new)
        self.replicas.remove(old)
        if old.in_flight:
            await old.idle.wait()
        await old.stop()


async def create_product(database_url: str, redis_url: str, on_hand: int) -> str:
    """A product made through inventory's admin API (an in-process app with a test admin)."""
    admin_key = SigningKey.generate()
    settings = inventory_settings(database_url, redis_url, SigningKey.generate().to_pem(), {})
    app = create_app(settings)
    app.state.security = ServiceSecurity.create(
        service_name="inventory",
        service_key=SigningKey.generate(),
        callers={},
        user_verifier=TokenVerifier(
            key_source=StaticKeySource([admin_key]), issuer="storefront-auth", audience="storefront"
        ),
    )
    token = TokenIssuer(signing_key=admin_key, issuer="storefront-auth").issue(
        subject="admin", audience="storefront", ttl=timedelta(minutes=5), roles=("admin",)
    )
    sku = f"KEYS-{uuid.uuid4().hex[:10].upper()}"
    async with (
        in_process(app, "http://inventory", request_timeout_s=5) as client,
    ):
        created = await client.post(
            "/api/v1/admin/products",
            headers={"Authorization": f"Bearer {token}"},
            json={
                "sku": sku,
                "name": "Rotated",
                "brand": "Acme",
                "category": "tests",
                "price": 100,
                "currency": "EUR",
                "initial_stock": on_hand,
            },
        )
    assert created.status_code == 201, created.text
    return sku


def reserve_body(sku: str) -> dict[str, Any]:
    return {"order_id": str(uuid.uuid4()), "items": [{"sku": sku, "qty": 1}]}


@asynccontextmanager
async def one_inventory(settings: InventorySettings) -> AsyncIterator[httpx.AsyncClient]:
    replica = await start_replica(settings)
    try:
        async with httpx.AsyncClient(base_url=replica.url, timeout=30) as client:
            yield client
    finally:
        await replica.stop()


@pytest.fixture
def keys() -> dict[str, str]:
    """Every service's variables, fresh, as `make run` (and `make env`) make them."""
    return service_token_env(SERVICES)


async def test_inventory_reserve_accepts_orders_and_refuses_every_other_service_key(
    database_url: str, redis_url: str, keys: dict[str, str]
) -> None:
    """Configured as make run does it: orders gets in; notifications' key is a 401 (inventory
    does not know it, whoever the token claims to be); catalog, a known caller, is a 403."""
    sku = await create_product(database_url, redis_url, on_hand=10)
    callers = json.loads(keys["INVENTORY_SERVICE_TOKEN_CALLERS"])
    assert set(callers) == {"catalog", "orders"}
    settings = inventory_settings(
        database_url, redis_url, keys["INVENTORY_SERVICE_TOKEN_KEY"], callers
    )
    notifications_pem = keys["NOTIFICATIONS_SERVICE_TOKEN_KEY"]
    notifications = caller("notifications", notifications_pem)
    # notifications' key, claiming to be orders (a compromised notifications forging orders)
    forged = caller("orders", notifications_pem)
    orders = caller("orders", keys["ORDERS_SERVICE_TOKEN_KEY"])
    catalog = caller("catalog", keys["CATALOG_SERVICE_TOKEN_KEY"])

    async with one_inventory(settings) as client:

        async def reserve(security: ServiceSecurity) -> httpx.Response:
            return await client.post(
                RESERVE, json=reserve_body(sku), auth=security.auth_for("inventory")
            )

        from_notifications = await reserve(notifications)
        forged_as_orders = await reserve(forged)
        from_catalog = await reserve(catalog)
        from_orders = await reserve(orders)

    for refused in (from_notifications, forged_as_orders):
        assert refused.status_code == 401, refused.text
        assert refused.json()["code"] == "invalid_token"
        assert refused.json()["detail"] == "The token was signed with an unknown key."
    assert from_catalog.status_code == 403, from_catalog.text
    assert from_catalog.json()["code"] == "caller_not_allowed"
    assert from_orders.status_code == 200, from_orders.text
    assert from_orders.json()["status"] == "reserved"


async def test_rotating_orders_key_drops_no_reservation(
    database_url: str, redis_url: str, keys: dict[str, str]
) -> None:
    """Inventory lists old and new, orders switches, the old is withdrawn: all while 24
    tasks reserve through two inventory replicas, each step a rolling restart."""
    sku = await create_product(database_url, redis_url, on_hand=1_000_000)
    own = keys["INVENTORY_SERVICE_TOKEN_KEY"]
    old_pem = keys["ORDERS_SERVICE_TOKEN_KEY"]
    new_key = SigningKey.generate()
    old_x, new_x = SigningKey.from_pem(old_pem).x, new_key.x

    def inventory_with(*orders_keys: str) -> InventorySettings:
        return inventory_settings(database_url, redis_url, own, {"orders": list(orders_keys)})

    rotation = Rotation([await start_replica(inventory_with(old_x)) for _ in range(2)])
    # Two orders replicas, each signing with the key its settings give it.
    orders_replicas = [caller("orders", old_pem), caller("orders", old_pem)]
    results: list[tuple[int, str, str]] = []  # status, orders key used, body on failure
    done = asyncio.Event()
    progress = asyncio.Condition()

    async def worker(index: int) -> None:
        async with httpx.AsyncClient(
            transport=rotation, base_url="http://inventory", timeout=30
        ) as client:
            for turn in itertools.count(index):
                if done.is_set():
                    return
                security = orders_replicas[turn % len(orders_replicas)]
                kid = security.minter.issuer.signing_key.kid
                try:
                    response = await client.post(
                        RESERVE, json=reserve_body(sku), auth=security.auth_for("inventory")
                    )
                    status, failure = response.status_code, response.text
                except httpx.HTTPError as exc:  # a dropped connection is a dropped request
                    status, failure = 0, repr(exc)
                async with progress:
                    results.append((status, kid, "" if status == 200 else failure))
                    progress.notify_all()

    async def some_more_requests(count: int = 30) -> None:
        async with progress:
            target = len(results) + count
            await progress.wait_for(lambda: len(results) >= target)

    workers = [asyncio.create_task(worker(i)) for i in range(24)]
    try:
        await some_more_requests()
        # 1. Inventory lists both keys: a rolling restart of its replicas.
        for old in list(rotation.replicas):
            await rotation.replace(old, await start_replica(inventory_with(old_x, new_x)))
            await some_more_requests()
        # 2. Orders signs with the new key: a rolling restart of its replicas.
        for index in range(len(orders_replicas)):
            orders_replicas[index] = caller("orders", new_key.to_pem())
            await some_more_requests()
        # 3. The old key is withdrawn from inventory.
        for old in list(rotation.replicas):
            await rotation.replace(old, await start_replica(inventory_with(new_x)))
            await some_more_requests()
    finally:
        done.set()
        await asyncio.gather(*workers)

    try:
        failures = [r for r in results if r[0] != 200]
        assert not failures, failures[:5]
        used = {kid for _, kid, _ in results}
        assert used == {SigningKey.from_pem(old_pem).kid, new_key.kid}
        # Withdrawn means withdrawn: a token signed with the old key is now refused.
        async with httpx.AsyncClient(transport=rotation, base_url="http://inventory") as client:
            old_auth = caller("orders", old_pem).auth_for("inventory")
            stale = await client.post(RESERVE, json=reserve_body(sku), auth=old_auth)
            new_auth = orders_replicas[0].auth_for("inventory")
            fresh = await client.post(RESERVE, json=reserve_body(sku), auth=new_auth)
        assert stale.status_code == 401
        assert fresh.status_code == 200
    finally:
        for replica in list(rotation.replicas):
            await replica.stop()
