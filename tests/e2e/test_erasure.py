"""Export and erasure through the gateway (issue 19).

A customer with orders in several states (confirmed, failed, cancelled) exports their
data, then erases themselves. Once every service has done its part, no row of the auth,
orders or notifications database, no Redis key or value, no Elasticsearch document and
no log line written after the erasure holds their phone, chat id, shipping address or
user id (but the documented residue: auth's tombstone row, its audit entries and the
``user.erased`` event itself; the streams' past order events). The old tokens are
refused. An admin's export and erasure are audited, a moderator gets 403, bad targets
are 4xx problems, and an erasure made while notifications is down is done when it is
back.
"""

import asyncio
import base64
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
import websockets
from redis.asyncio import Redis
from websockets.typing import Subprotocol

from auth_service.fields import PHONE_CONTEXT
from notifications_service.fields import CHAT_CONTEXT
from notifications_service.settings import NotificationsSettings
from storefront_seed.users import auth_settings
from storefront_stack.logins import bearer, messages, new_phone, telegram_login, user_token
from storefront_stack.platform import Platform
from storefront_stack.shop import create_product, product_body

pytestmark = pytest.mark.e2e

DEADLINE_S = 60.0
#: Rows that may name the erased user's id after the erasure, and why (docs/auth.md).
ID_RESIDUE = {
    ("auth", "user_account"),  # the tombstone: id and erased_at, every personal field NULL
    ("auth", "audit_entry"),  # append-only record of staff and self-service actions
    ("auth", "outbox_event"),  # the user.erased event itself, until purged
}


def _token(platform: Platform, *roles: str, subject: str | None = None) -> dict[str, str]:
    return bearer(user_token(platform.platform_env, *roles, subject=subject))


def _dsn(platform: Platform, service: str) -> str:
    url = platform.service_env(service)[f"{service.upper()}_DATABASE_URL"]
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _until(check: Callable[[], Awaitable[Any]], what: str) -> Any:
    async with asyncio.timeout(DEADLINE_S):
        while True:
            value = await check()
            if value:
                return value
            await asyncio.sleep(0.25)
    raise AssertionError(what)  # pragma: no cover


async def _rows_by_table(platform: Platform, service: str) -> dict[str, list[str]]:
    """Every row of every table of the service's database, each as its JSON text."""
    connection = await asyncpg.connect(_dsn(platform, service))
    try:
        tables = [
            r["table_name"]
            for r in await connection.fetch(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
            )
        ]
        return {
            table: [
                r["row"]
                for r in await connection.fetch(
                    f'SELECT row_to_json(t)::text AS row FROM "{table}" t'  # noqa: S608
                )
            ]
            for table in tables
        }
    finally:
        await connection.close()


async def _scalar(platform: Platform, service: str, sql: str, *args: Any) -> Any:
    connection = await asyncpg.connect(_dsn(platform, service))
    try:
        return await connection.fetchval(sql, *args)
    finally:
        await connection.close()


async def _no_orders_of(platform: Platform, user_id: str) -> bool:
    """No order names the user (orders took its part of the erasure)."""
    return not await _scalar(
        platform, "orders", "SELECT count(*) FROM customer_order WHERE user_id = $1", user_id
    )


async def _redis_dump(redis: Redis) -> tuple[list[str], list[str], list[str]]:
    """(key names, values of keys that are not streams, stream entries) as text."""
    names: list[str] = []
    values: list[str] = []
    streams: list[str] = []
    async for key in redis.scan_iter(count=1000):
        names.append(key)
        kind = await redis.type(key)
        if kind == "string":
            values.append(str(await redis.get(key)))
        elif kind == "hash":
            values.append(str(await redis.hgetall(key)))
        elif kind == "zset":
            values.append(str(await redis.zrange(key, 0, -1)))
        elif kind == "set":
            values.append(str(await redis.smembers(key)))
        elif kind == "list":
            values.append(str(await redis.lrange(key, 0, -1)))
        elif kind == "stream":
            streams.append(str(await redis.xrange(key)))
    return names, values, streams


def _log_sizes(platform: Platform) -> dict[Path, int]:
    return {path: path.stat().st_size for path in (platform.state_dir / "logs").glob("*.log")}


def _written_since(sizes: dict[Path, int], platform: Platform) -> dict[str, str]:
    written = {}
    for path in (platform.state_dir / "logs").glob("*.log"):
        with path.open("rb") as log:
            log.seek(sizes.get(path, 0))
            written[path.name] = log.read().decode(errors="replace")
    return written


async def _order(
    client: httpx.AsyncClient,
    access: str,
    sku: str,
    address: dict[str, str],
    *,
    qty: int = 1,
    until: tuple[str, ...] = ("CONFIRMED",),
) -> dict[str, Any]:
    auth = {"Authorization": f"Bearer {access}"}
    ordered = await client.post(
        "/api/v1/orders",
        headers={**auth, "Idempotency-Key": str(uuid.uuid4())},
        json={
            "items": [{"sku": sku, "qty": qty}],
            "shipping_address": address,
            "payment": {"method": "card", "token": "tok_erasure"},
        },
    )
    assert ordered.status_code in (201, 202), ordered.text
    order_id = ordered.json()["id"]

    async def settled() -> dict[str, Any] | None:
        order: dict[str, Any] = (
            await client.get(f"/api/v1/orders/{order_id}", headers=auth)
        ).json()
        return order if order["status"] in until else None

    found: dict[str, Any] = await _until(settled, f"order {order_id} reaching {until}")
    return found


async def _customer_with_orders(
    client: httpx.AsyncClient, platform: Platform, tag: str
) -> dict[str, Any]:
    """A logged-in customer with a confirmed, a failed and a cancelled order."""
    phone = new_phone()
    chat_id = 700_000 + uuid.uuid4().int % 100_000
    address = {
        "name": f"Erasable Person {tag}",
        "line1": f"{tag} Forgotten Road",
        "city": f"Nowhere{tag}",
        "postal_code": f"E{tag[:7]}",
        "country": "DE",
        "phone": phone,
    }
    sku = f"ERASE-{tag.upper()}"
    await create_product(
        client,
        _token(platform, "admin"),
        product_body(
            sku, name="Forgettable mug", price=1000, stock=10, brand="Acme", category="home"
        ),
    )
    tokens = await telegram_login(client, phone, chat_id, deadline_s=DEADLINE_S)
    access = tokens["access_token"]
    me = (
        await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {access}"})
    ).json()
    confirmed = await _order(client, access, sku, address)
    failed = await _order(client, access, sku, address, qty=50, until=("FAILED",))
    to_cancel = await _order(client, access, sku, address)
    cancel = await client.post(
        f"/api/v1/orders/{to_cancel['id']}/cancel",
        headers={"Authorization": f"Bearer {access}"},
    )
    assert cancel.status_code in (200, 202), cancel.text
    cancelled = await _order_status(client, access, to_cancel["id"], "CANCELLED")
    # Every message of these orders reached the chat (nothing left in flight to name them).
    await _until(
        lambda: _refund_told(client, chat_id), "the refund message reaching the customer's chat"
    )
    return {
        "phone": phone,
        "chat_id": chat_id,
        "address": address,
        "tokens": tokens,
        "id": me["id"],
        "orders": {"CONFIRMED": confirmed, "FAILED": failed, "CANCELLED": cancelled},
    }


async def _order_status(
    client: httpx.AsyncClient, access: str, order_id: str, status: str
) -> dict[str, Any]:
    auth = {"Authorization": f"Bearer {access}"}

    async def reached() -> dict[str, Any] | None:
        order: dict[str, Any] = (
            await client.get(f"/api/v1/orders/{order_id}", headers=auth)
        ).json()
        return order if order["status"] == status else None

    found: dict[str, Any] = await _until(reached, f"order {order_id} reaching {status}")
    return found


async def _refund_told(client: httpx.AsyncClient, chat_id: int) -> bool:
    return any("refund" in m["text"].lower() for m in await messages(client, chat_id))


def _personal(person: dict[str, Any]) -> dict[str, str]:
    address = person["address"]
    return {
        "phone": person["phone"],
        "phone without +": person["phone"].removeprefix("+"),
        "chat id": str(person["chat_id"]),
        "name": address["name"],
        "street": address["line1"],
        "city": address["city"],
        "postal code": address["postal_code"],
    }


async def test_an_erased_customer_leaves_no_personal_field_anywhere(platform: Platform) -> None:
    assert platform.endpoints is not None
    tag = uuid.uuid4().hex[:10]
    gateway = platform.endpoints.gateway_url
    redis = Redis.from_url(platform.endpoints.redis_url, decode_responses=True)
    async with httpx.AsyncClient(base_url=gateway, timeout=15) as client:
        person = await _customer_with_orders(client, platform, tag)
        user_id = person["id"]
        access = person["tokens"]["access_token"]
        me = {"Authorization": f"Bearer {access}"}

        exported = await client.get("/api/v1/users/me/export", headers=me)
        assert exported.status_code == 200, exported.text
        document = exported.json()
        assert document["account"]["id"] == user_id
        assert document["account"]["phone"] == person["phone"]
        assert document["account"]["telegram"]["chat_id"] == person["chat_id"]
        statuses = sorted(o["status"] for o in document["orders"])
        assert statuses == ["CANCELLED", "CONFIRMED", "FAILED"]
        assert {o["shipping_address"]["line1"] for o in document["orders"]} == {
            person["address"]["line1"]
        }
        # The phone's pseudonym the fraud rules count by is held, so it is exported too.
        access_claims = orjson.loads(base64.urlsafe_b64decode(access.split(".")[1] + "=="))
        assert {o["phone_ref"] for o in document["orders"]} == {access_claims["phone_ref"]}
        assert document["notifications"]["messages"], "the receipts sent are exported"
        assert {m["chat_id"] for m in document["notifications"]["messages"]} == {person["chat_id"]}

        ws_url = gateway.replace("http://", "ws://", 1) + "/ws"
        async with websockets.connect(
            ws_url, subprotocols=[Subprotocol("bearer"), Subprotocol(access)]
        ) as socket:
            assert orjson.loads(await socket.recv())["type"] == "welcome"
            presence = await client.get("/api/v1/users/me/export", headers=me)
            assert presence.json()["presence"]["online"] is True

            sizes = _log_sizes(platform)
            erased = await client.delete("/api/v1/users/me", headers=me)
            assert erased.status_code == 202, erased.text
            assert erased.json()["status"] == "accepted"

            # The live socket is closed (4401) by the ws-gateway's part.
            with pytest.raises(websockets.ConnectionClosed) as closed:
                async with asyncio.timeout(DEADLINE_S):
                    while True:
                        await socket.recv()
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 4401

        # Every service does its part.
        async def notifications_done() -> bool:
            rows = await _scalar(
                platform,
                "notifications",
                "SELECT count(*) FROM notification_log WHERE user_id = $1",
                user_id,
            )
            return not rows and not await redis.exists(f"notifications:chat:{user_id}")

        async def presence_done() -> bool:
            members = await redis.zrange("presence:connections", 0, -1)
            return not any(m.startswith(user_id) for m in members)

        await _until(lambda: _no_orders_of(platform, user_id), "orders pseudonymised")
        await _until(notifications_done, "notification log deleted")
        await _until(presence_done, "presence dropped")

        # The old tokens are refused everywhere.
        for path in ("/api/v1/users/me", "/api/v1/orders"):
            refused = await client.get(path, headers=me)
            assert refused.status_code == 401, (path, refused.text)
        refreshed = await client.post(
            "/api/v1/auth/token/refresh",
            json={"refresh_token": person["tokens"]["refresh_token"]},
        )
        assert refreshed.status_code == 401, refreshed.text
        again = await client.delete("/api/v1/users/me", headers=me)
        assert again.status_code == 401

        # Orders keep their bookkeeping, cut off from the person.
        connection = await asyncpg.connect(_dsn(platform, "orders"))
        try:
            kept = await connection.fetch(
                "SELECT user_id, status, total, client_address, phone_ref FROM customer_order"
                " WHERE id = ANY($1::uuid[])",
                [o["id"] for o in person["orders"].values()],
            )
        finally:
            await connection.close()
        assert sorted(r["status"] for r in kept) == ["CANCELLED", "CONFIRMED", "FAILED"]
        assert len({r["user_id"] for r in kept}) == 1
        assert user_id not in {r["user_id"] for r in kept}
        assert all(r["client_address"] is None for r in kept)
        assert all(r["phone_ref"] is None for r in kept)
        assert {r["total"] for r in kept if r["status"] != "FAILED"} == {1000}

    # -- no personal field anywhere ----------------------------------------------------
    personal = _personal(person)
    for service in ("auth", "orders", "notifications"):
        for table, rows in (await _rows_by_table(platform, service)).items():
            text = "\n".join(rows)
            for what, value in personal.items():
                assert value not in text, (service, table, what)
            if (service, table) not in ID_RESIDUE:
                assert user_id not in text, (service, table, "user id")
    # The residue is only what docs/auth.md names.
    tombstone = await _scalar(
        platform,
        "auth",
        "SELECT row_to_json(u)::text FROM user_account u WHERE id = $1",
        uuid.UUID(user_id),
    )
    account = orjson.loads(tombstone)
    for column in ("phone", "phone_index", "telegram_chat_id", "telegram_chat_index"):
        assert account[column] is None, column
    assert account["erased_at"] is not None
    audited = await _scalar(
        platform,
        "auth",
        "SELECT array_agg(action ORDER BY id) FROM audit_entry WHERE target_id = $1",
        user_id,
    )
    assert audited == ["user.exported", "user.exported", "user.erased"]
    # Blind indexes: no row is found by the erased phone or chat any more.
    _, auth_index = auth_settings(platform.service_env("auth")).field_crypto()
    assert not await _scalar(
        platform,
        "auth",
        "SELECT count(*) FROM user_account WHERE phone_index = $1",
        auth_index.digest(person["phone"], context=PHONE_CONTEXT),
    )
    env = platform.service_env("notifications")
    notifications = NotificationsSettings(
        **{  # type: ignore[arg-type]
            field: env[NotificationsSettings.env_name(field)]
            for field in ("encryption_keys", "encryption_key_id", "blind_index_key")
            if NotificationsSettings.env_name(field) in env
        }
    )
    _, notifications_index = notifications.field_crypto()
    assert not await _scalar(
        platform,
        "notifications",
        "SELECT count(*) FROM notification_log WHERE chat_index = $1",
        notifications_index.digest(person["chat_id"], context=CHAT_CONTEXT),
    )

    # Redis: no key names them; no value but the streams' past events holds their id.
    names, values, streams = await _redis_dump(redis)
    await redis.aclose()
    for what, value in {**personal, "user id": user_id}.items():
        assert not [name for name in names if value in name], what
        assert not [v for v in values if value in v], what
    stream_text = "\n".join(streams)
    for what, value in personal.items():
        assert value not in stream_text, ("stream", what)

    # Elasticsearch (the catalog's read model) never held them.
    async with httpx.AsyncClient(base_url=platform.endpoints.elasticsearch_url) as es:
        for value in (person["phone"], person["address"]["line1"], user_id):
            found = await es.get(
                "/_all/_search", params={"q": f'"{value}"', "lenient": "true", "size": 1}
            )
            assert found.status_code == 200, found.text
            assert found.json()["hits"]["total"]["value"] == 0, value

    # No log line written after the erasure names them.
    for name, text in _written_since(sizes, platform).items():
        for what, value in {**personal, "user id": user_id}.items():
            lines = [line for line in text.splitlines() if value in line]
            assert not lines, (name, what, lines[:3])


async def test_admins_export_and_erase_audited_moderators_get_403_bad_targets_4xx(
    platform: Platform,
) -> None:
    assert platform.endpoints is not None
    admin_id = str(uuid.uuid4())
    admin = _token(platform, "admin", "customer", subject=admin_id)
    moderator = _token(platform, "moderator", "customer")
    async with httpx.AsyncClient(base_url=platform.endpoints.gateway_url, timeout=15) as client:
        phone = new_phone()
        tokens = await telegram_login(
            client, phone, 700_000 + uuid.uuid4().int % 100_000, deadline_s=DEADLINE_S
        )
        customer = {"Authorization": f"Bearer {tokens['access_token']}"}
        user_id = (await client.get("/api/v1/users/me", headers=customer)).json()["id"]
        path = f"/api/v1/admin/users/{user_id}"

        for who in (moderator, customer):
            assert (await client.get(f"{path}/export", headers=who)).status_code == 403
            assert (await client.delete(path, headers=who)).status_code == 403
        exported = await client.get(f"{path}/export", headers=admin)
        assert exported.status_code == 200, exported.text
        assert exported.json()["account"]["phone"] == phone
        erased = await client.delete(path, headers=admin)
        assert erased.status_code == 202, erased.text

        twice = await client.delete(path, headers=admin)
        assert (twice.status_code, twice.json()["code"]) == (409, "user_erased")
        unknown = await client.delete(f"/api/v1/admin/users/{uuid.uuid4()}", headers=admin)
        assert (unknown.status_code, unknown.json()["code"]) == (404, "user_not_found")
        malformed = await client.delete("/api/v1/admin/users/not-a-user", headers=admin)
        assert malformed.status_code == 422
        assert malformed.headers["content-type"] == "application/problem+json"
        assert (await client.get("/api/v1/users/me", headers=customer)).status_code == 401

        audit = await client.get(
            "/api/v1/admin/audit", params={"target_id": user_id}, headers=moderator
        )
        assert audit.status_code == 200, audit.text
        entries = sorted(audit.json()["items"], key=lambda e: e["id"])
        assert [e["action"] for e in entries] == ["user.exported", "user.erased"]
        assert {e["actor_id"] for e in entries} == {admin_id}
        assert all(e["request_id"] and e["client_ip"] for e in entries)


async def test_an_erasure_made_while_notifications_is_down_is_done_when_it_is_back(
    platform: Platform,
) -> None:
    assert platform.endpoints is not None
    async with httpx.AsyncClient(base_url=platform.endpoints.gateway_url, timeout=15) as client:
        phone = new_phone()
        chat_id = 700_000 + uuid.uuid4().int % 100_000
        tokens = await telegram_login(client, phone, chat_id, deadline_s=DEADLINE_S)
        access = tokens["access_token"]
        me = {"Authorization": f"Bearer {access}"}
        user_id = (await client.get("/api/v1/users/me", headers=me)).json()["id"]
        sku = f"LATE-{uuid.uuid4().hex[:8].upper()}"
        await create_product(
            client,
            _token(platform, "admin"),
            product_body(sku, name="Late mug", price=700, stock=3, brand="Acme", category="home"),
        )
        address = {"name": "Late Person", "line1": "1 Late St", "city": "Berlin",
                   "postal_code": "10115", "country": "DE"}  # fmt: skip
        await _order(client, access, sku, address)

        async def logged() -> Any:
            return await _scalar(
                platform,
                "notifications",
                "SELECT count(*) FROM notification_log WHERE user_id = $1",
                user_id,
            )

        await _until(logged, "the receipt logged by notifications")

        platform.stop_service("notifications")
        try:
            erased = await client.delete("/api/v1/users/me", headers=me)
            assert erased.status_code == 202, erased.text

            await _until(lambda: _no_orders_of(platform, user_id), "orders pseudonymised")
            assert await logged(), "notifications is down: its part waits in the stream"
        finally:
            platform.start_service("notifications")

        async def notifications_done() -> bool:
            return not await logged()

        await _until(notifications_done, "notifications caught up after its restart")
