"""An erased user's orders: exported for auth over an internal route, and pseudonymised
from ``user.erased`` by the ``orders-erasure`` consumer group (once in effect, also when
the event comes again or the service was down when it was published)."""

import asyncio
import uuid
from typing import Any

import orjson
from redis.asyncio import Redis
from sqlalchemy import text

from orders_service.settings import fraud_rules
from orders_service.workers.erasure import ERASURE_GROUP, USERS_STREAM, UserErasure
from storefront_kit.events import EventEnvelope
from storefront_kit.revocation import revoke_subject

from .conftest import ADDRESS, Keys, Orders, running, settings_for

RULES = orjson.dumps(
    [
        {
            "name": "per_user",
            "kind": "velocity_user",
            "action": "refuse",
            "limit": 50,
            "window_s": 3600,
        },
        {
            "name": "per_client",
            "kind": "velocity_client",
            "action": "refuse",
            "limit": 50,
            "window_s": 3600,
        },
        {
            "name": "per_phone",
            "kind": "velocity_phone",
            "action": "refuse",
            "limit": 50,
            "window_s": 3600,
        },
    ]
).decode()


def _erased(user_id: str) -> EventEnvelope:
    return EventEnvelope.new(type="user.erased", source="auth", data={"user_id": user_id})


async def _rows(orders: Orders, sql: str, **params: Any) -> list[dict[str, Any]]:
    async with orders.sessionmaker() as session:
        return [dict(r._mapping) for r in await session.execute(text(sql), params)]


async def _orders_left_of(orders: Orders, user_id: str) -> list[dict[str, Any]]:
    """The user's orders still there, after up to 15 s for the erasure consumer to take them."""
    for _ in range(300):
        left = await _rows(orders, "SELECT id FROM customer_order WHERE user_id = :u", u=user_id)
        if not left:
            break
        await asyncio.sleep(0.05)
    return left


async def _text_of_every_row(orders: Orders) -> str:
    """Every row of every table of the orders database, as text (bytea as hex)."""
    tables = await _rows(
        orders,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
    )
    dumped = []
    for table in tables:
        rows = await _rows(orders, f'SELECT * FROM "{table["table_name"]}"')  # noqa: S608
        dumped.append(orjson.dumps(rows, default=str).decode())
    return "\n".join(dumped)


async def test_auth_gets_the_users_orders_with_addresses_and_steps(
    orders: Orders, keys: Keys
) -> None:
    user = str(uuid.uuid4())
    first = await orders.insert(user_id=user, status="CONFIRMED")
    await orders.insert(user_id=user, status="FAILED")
    await orders.insert(user_id=str(uuid.uuid4()))
    path = f"/internal/orders/users/{user}/export"

    answer = await orders.client.get(
        path, headers={"Authorization": f"Bearer {keys.services.token('auth', 'orders')}"}
    )

    assert answer.status_code == 200, answer.text
    exported = answer.json()["orders"]
    assert [o["status"] for o in exported] == ["CONFIRMED", "FAILED"]
    assert exported[0]["id"] == first
    assert exported[0]["shipping_address"] == ADDRESS
    assert exported[0]["lines"][0]["unit_price"] == 500
    assert exported[0]["steps"] == []
    for caller in ("catalog", "notifications"):
        token = keys.services.token(caller, "orders")
        refused = await orders.client.get(path, headers={"Authorization": f"Bearer {token}"})
        assert refused.status_code in (401, 403)
    user_token = await orders.client.get(path, headers=keys.headers(user))
    assert user_token.status_code == 401


async def test_an_erased_users_orders_are_pseudonymised_once_and_keep_their_bookkeeping(
    database_url: str, redis_url: str, keys: Keys
) -> None:
    settings = settings_for(database_url, redis_url, fraud_rules=RULES)
    async with running(settings, keys) as orders:
        redis: Redis = orders.state.redis
        user, other = str(uuid.uuid4()), str(uuid.uuid4())
        ids = [
            await orders.insert(user_id=user, status=status)
            for status in ("CONFIRMED", "FAILED", "CANCELLED", "ON_HOLD", "SHIPPED")
        ]
        kept = await orders.insert(user_id=other)
        phone_ref = uuid.uuid4().hex
        async with orders.sessionmaker() as session, session.begin():
            await session.execute(
                text(
                    "UPDATE customer_order SET client_address = NULL, phone_ref = :p"
                    " WHERE user_id = :u"
                ),
                {"u": user, "p": phone_ref},
            )
            await session.execute(
                text(
                    "INSERT INTO saga_step (id, order_id, user_id, step, kind, status, attempts)"
                    " VALUES (:id, :o, :u, 'payment', 'action', 'done', 1)"
                ),
                {"id": uuid.uuid4(), "o": ids[0], "u": user},
            )
            await session.execute(
                text(
                    "INSERT INTO outbox_event (id, stream, event_type, envelope, published_at)"
                    " VALUES (:id, 'orders.events', 'order.confirmed', CAST(:e AS jsonb), now())"
                ),
                {
                    "id": uuid.uuid4(),
                    "e": orjson.dumps({"data": {"user_id": user, "order_id": ids[0]}}).decode(),
                },
            )
        rule_user, rule_client, rule_phone = (r.name for r in fraud_rules(settings))
        await redis.zadd(f"orders:fraud:{rule_user}:u:{user}", {ids[0]: 1})
        await redis.zadd(f"orders:fraud:{rule_client}:c:203.0.113.5", {"someone-else": 1})
        # The phone's window holds this user's checkouts and another account's.
        phone_window = f"orders:fraud:{rule_phone}:p:{phone_ref}"
        await redis.zadd(phone_window, {ids[0]: 1, ids[1]: 2, "other-account-order": 3})
        assert (await orders.client.get("/api/v1/orders", headers=keys.headers(user))).json()[
            "total"
        ] == 5

        await redis.xadd(USERS_STREAM, _erased(user).to_stream_fields())  # type: ignore[arg-type]
        assert await _orders_left_of(orders, user) == []

        rows = await _rows(
            orders,
            "SELECT id, user_id, status, total, lines, client_address FROM customer_order"
            " WHERE id = ANY(CAST(:ids AS uuid[])) ORDER BY id",
            ids=ids,
        )
        pseudonyms = {r["user_id"] for r in rows}
        assert len(pseudonyms) == 1
        assert user not in pseudonyms
        assert sorted(r["status"] for r in rows) == sorted(
            ["CONFIRMED", "FAILED", "CANCELLED", "ON_HOLD", "SHIPPED"]
        )
        assert all(r["total"] == 500 and r["lines"][0]["sku"] == "SKU-1" for r in rows)
        assert all(r["client_address"] is None for r in rows)
        assert phone_ref not in await _text_of_every_row(orders)
        # Only this user's checkouts left the phone's window; the other account's stay.
        assert await redis.zrange(phone_window, 0, -1) == ["other-account-order"]
        async with orders.sessionmaker() as session:
            from orders_service.models import CustomerOrder

            erased = await session.get(CustomerOrder, uuid.UUID(ids[0]))
            untouched = await session.get(CustomerOrder, uuid.UUID(kept))
        assert erased is not None
        assert erased.shipping_address == {"erased": True}
        assert untouched is not None
        assert untouched.shipping_address == ADDRESS
        assert untouched.user_id == other
        # No row of any table names the user; their fraud counter went too.
        everything = await _text_of_every_row(orders)
        assert user not in everything
        assert ADDRESS["line1"] not in everything
        assert await redis.exists(f"orders:fraud:{rule_user}:u:{user}") == 0
        assert user not in str(await redis.keys("*"))
        assert await redis.exists(f"orders:fraud:{rule_client}:c:203.0.113.5") == 1

        # Delivered again (at least once): nothing changes.
        handler = UserErasure(
            shards=orders.state.shards,
            redis=redis,
            fraud_rules=fraud_rules(settings),
            fraud_namespace=settings.fraud_namespace,
        )
        await handler(_erased(user))
        again = await _rows(
            orders,
            "SELECT user_id FROM customer_order WHERE id = ANY(CAST(:ids AS uuid[]))",
            ids=ids,
        )
        assert {r["user_id"] for r in again} == pseudonyms
        # The erased user's token is refused (auth marks it revoked in Redis).
        await revoke_subject(redis, user, ttl_s=60)
        refused = await orders.client.get("/api/v1/orders", headers=keys.headers(user))
        assert refused.status_code == 401


async def test_an_erasure_published_while_orders_was_down_is_done_when_it_is_back(
    database_url: str, redis_url: str, keys: Keys
) -> None:
    settings = settings_for(database_url, redis_url)
    user = str(uuid.uuid4())
    async with running(settings, keys) as orders:
        await orders.insert(user_id=user, status="CONFIRMED")
        redis: Redis = orders.state.redis
        # The group exists (the consumer ran); then the service stops.
        await orders.state.erasure_consumer.ensure_group()
    publisher = Redis.from_url(redis_url, decode_responses=True)
    try:
        entry = await publisher.xadd(USERS_STREAM, _erased(user).to_stream_fields())  # type: ignore[arg-type]
        groups = {g["name"]: g for g in await publisher.xinfo_groups(USERS_STREAM)}
        assert groups[ERASURE_GROUP]["last-delivered-id"] != entry  # not read yet
    finally:
        await publisher.aclose()
    async with running(settings, keys) as orders:
        assert await _orders_left_of(orders, user) == []
        redis = orders.state.redis
        groups = {g["name"]: g for g in await redis.xinfo_groups(USERS_STREAM)}
        assert groups[ERASURE_GROUP]["pending"] == 0
