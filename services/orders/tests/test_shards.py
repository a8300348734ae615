"""Orders over two PostgreSQL databases (issue 20, "sharding readiness").

The service runs with ``ORDERS_DATABASE_SHARDS`` naming two real databases and the
default router. A user's orders, their saga steps and their outbox events are written
to the user's database only; a customer reads their own there; staff lists fan out and
merge newest first, page by page, as one database would order them; a staff read by id
finds the order wherever it is; readiness and ``migrate`` cover every database.
"""

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from orders_service.domain.sharding import by_user_hash
from storefront_stack.pytest_plugin import create_test_database
from storefront_stack.shop import order_body

from .conftest import Keys, Orders, running, settings_for

ADMIN_ORDERS = "/api/v1/admin/orders"


@pytest.fixture(scope="module")
async def second_database_url(postgres_server_url: str) -> str:
    return await asyncio.to_thread(create_test_database, postgres_server_url, "orders_service")


@pytest.fixture
async def orders(
    database_url: str, second_database_url: str, redis_url: str, keys: Keys
) -> AsyncIterator[Orders]:
    settings = settings_for(
        database_url, redis_url, database_shards=f"{database_url},{second_database_url}"
    )
    assert settings.database_urls() == (database_url, second_database_url)
    async with running(settings, keys) as service:
        yield service


def user_on(url: str, urls: tuple[str, str]) -> str:
    """A new user id the default router sends to ``url``."""
    while True:
        user = str(uuid.uuid4())
        if by_user_hash(user, urls) == url:
            return user


async def rows(url: str, query: str, **params: Any) -> list[dict[str, Any]]:
    """``query`` read straight from one database, bypassing the service."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            result = await connection.execute(text(query), params)
            return [dict(row._mapping) for row in result]
    finally:
        await engine.dispose()


async def checkout(orders: Orders, user: str) -> dict[str, Any]:
    """A checkout that settles FAILED at once (no inventory here): an order row, its saga
    steps and its outbox events, written by the saga on the user's shard."""
    response = await orders.client.post(
        "/api/v1/orders",
        json=order_body("SKU-1", token="tok_shards"),
        headers={**orders.keys.headers(user), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert response.status_code in (201, 202), response.text
    order: dict[str, Any] = response.json()
    return order


async def settled(orders: Orders, user: str, order_id: str) -> dict[str, Any]:
    async with asyncio.timeout(20):
        while True:
            response = await orders.client.get(
                f"/api/v1/orders/{order_id}", headers=orders.keys.headers(user)
            )
            assert response.status_code == 200, response.text
            if response.json()["status"] == "FAILED":
                body: dict[str, Any] = response.json()
                return body
            await asyncio.sleep(0.05)


async def test_a_users_orders_steps_and_outbox_stay_in_their_database(
    orders: Orders, database_url: str, second_database_url: str
) -> None:
    urls = (database_url, second_database_url)
    first, second = user_on(urls[0], urls), user_on(urls[1], urls)
    placed: dict[str, list[str]] = {first: [], second: []}
    for user in (first, second, first, second):
        placed[user].append((await checkout(orders, user))["id"])
    for user, ids in placed.items():
        for order_id in ids:
            await settled(orders, user, order_id)

    for url, user, other in ((urls[0], first, second), (urls[1], second, first)):
        held = await rows(url, "SELECT id::text, user_id FROM customer_order")
        mine = {row["id"] for row in held if row["user_id"] == user}
        assert mine == set(placed[user])
        assert not any(row["user_id"] == other for row in held)
        steps = await rows(url, "SELECT DISTINCT order_id::text AS order_id FROM saga_step")
        assert set(placed[user]) <= {row["order_id"] for row in steps}
        assert not set(placed[other]) & {row["order_id"] for row in steps}
        events = await rows(
            url,
            "SELECT DISTINCT envelope->'data'->>'order_id' AS order_id FROM outbox_event"
            " WHERE stream = 'orders.events'",
        )
        published = {row["order_id"] for row in events}
        assert set(placed[user]) <= published  # each order's failure event, beside it
        assert not set(placed[other]) & published


async def test_a_customer_reads_their_own_orders_and_no_one_elses(
    orders: Orders, database_url: str, second_database_url: str
) -> None:
    urls = (database_url, second_database_url)
    first, second = user_on(urls[0], urls), user_on(urls[1], urls)
    mine = (await checkout(orders, second))["id"]
    theirs = (await checkout(orders, first))["id"]

    listed = await orders.client.get("/api/v1/orders", headers=orders.keys.headers(second))
    assert listed.status_code == 200, listed.text
    assert [order["id"] for order in listed.json()["items"]] == [mine]
    assert listed.json()["total"] == 1
    own = await orders.client.get(f"/api/v1/orders/{mine}", headers=orders.keys.headers(second))
    assert own.status_code == 200
    assert own.json()["id"] == mine
    foreign = await orders.client.get(
        f"/api/v1/orders/{theirs}", headers=orders.keys.headers(second)
    )
    assert foreign.status_code == 404
    assert foreign.json()["code"] == "order_not_found"


async def test_staff_lists_fan_out_and_merge_newest_first_page_by_page(
    orders: Orders, database_url: str, second_database_url: str
) -> None:
    urls = (database_url, second_database_url)
    users = [user_on(urls[i % 2], urls) for i in range(5)]
    for user in users:
        await checkout(orders, user)
    # What one database holding both would answer: every order, newest first.
    every = [
        row
        for url in urls
        for row in await rows(url, "SELECT id::text, created_at, status FROM customer_order")
    ]
    expected = [row["id"] for row in sorted(every, key=lambda r: (r["created_at"], r["id"]))][::-1]
    assert len({row["id"] for row in every}) == len(every)  # no order in both databases

    staff = orders.keys.headers("staff-1", "moderator")
    listed: list[str] = []
    page = 1
    while True:
        response = await orders.client.get(
            ADMIN_ORDERS, params={"page": page, "size": 3}, headers=staff
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["total"] == len(expected)
        if not body["items"]:
            break
        listed += [order["id"] for order in body["items"]]
        page += 1
    assert listed == expected
    # A user's filter reads their database alone, with the same answer.
    filtered = await orders.client.get(ADMIN_ORDERS, params={"user_id": users[1]}, headers=staff)
    assert filtered.status_code == 200
    assert [o["user_id"] for o in filtered.json()["items"]] == [users[1]]


async def test_staff_read_an_order_by_id_whichever_database_holds_it(
    orders: Orders, database_url: str, second_database_url: str
) -> None:
    urls = (database_url, second_database_url)
    for url in urls:
        user = user_on(url, urls)
        order_id = (await checkout(orders, user))["id"]
        await settled(orders, user, order_id)
        read = await orders.client.get(
            f"{ADMIN_ORDERS}/{order_id}", headers=orders.keys.headers("staff-1", "moderator")
        )
        assert read.status_code == 200, read.text
        assert read.json()["user_id"] == user
        assert read.json()["steps"], "its saga steps come from the same database"
    missing = await orders.client.get(
        f"{ADMIN_ORDERS}/{uuid.uuid4()}", headers=orders.keys.headers("admin-1", "admin")
    )
    assert missing.status_code == 404
    assert missing.json()["code"] == "order_not_found"
    # An admin's cancel finds it too: a FAILED order is not cancellable (409, not 404).
    refused = await orders.client.post(
        f"{ADMIN_ORDERS}/{order_id}/cancel", headers=orders.keys.headers("admin-1", "admin")
    )
    assert refused.status_code == 409, refused.text


async def test_readiness_checks_every_database(orders: Orders) -> None:
    ready = await orders.client.get("/health/ready")
    assert ready.status_code == 200, ready.text
    checks = ready.json()["checks"]
    assert {name: checks[name] for name in checks if name.startswith(("postgres", "redis"))} == {
        "postgres-1": "ok",
        "postgres-2": "ok",
        "redis": "ok",
    }


def test_migrate_upgrades_every_database(postgres_server_url: str) -> None:
    empty = [create_test_database(postgres_server_url) for _ in range(2)]
    env = {**os.environ, "ORDERS_DATABASE_SHARDS": ",".join(empty)}
    done = subprocess.run(
        [sys.executable, "-m", "orders_service", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    for url in empty:
        tables = asyncio.run(
            rows(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        )
        assert {"customer_order", "saga_step", "outbox_event", "alembic_version"} <= {
            row["tablename"] for row in tables
        }
