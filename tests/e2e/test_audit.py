"""The audit log through the gateway (issue 19): staff actions in auth, inventory and
orders read back from ``GET /api/v1/admin/audit``, and entries made while auth is down
arrive once it is back, exactly once."""

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from storefront_stack.logins import bearer, new_chat_id, new_phone, telegram_login, user_token
from storefront_stack.platform import Platform
from storefront_stack.shop import ADDRESS, create_product

pytestmark = pytest.mark.e2e

DEADLINE_S = 30.0
AUDIT = "/api/v1/admin/audit"


def _token(platform: Platform, subject: str, *roles: str) -> dict[str, str]:
    return bearer(user_token(platform.platform_env, *roles, subject=subject))


async def _entries(
    client: httpx.AsyncClient, headers: dict[str, str], count: int, **params: Any
) -> list[dict[str, Any]]:
    """The audit entries matching ``params`` once there are ``count`` (they travel a stream)."""
    deadline = asyncio.get_running_loop().time() + DEADLINE_S
    while True:
        response = await client.get(AUDIT, params=params, headers=headers)
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        if len(items) >= count:
            return items
        assert asyncio.get_running_loop().time() < deadline, [i["action"] for i in items]
        await asyncio.sleep(0.2)


async def _confirmed_order(client: httpx.AsyncClient, access: str, sku: str) -> str:
    ordered = await client.post(
        "/api/v1/orders",
        headers={"Authorization": f"Bearer {access}", "Idempotency-Key": str(uuid.uuid4())},
        json={
            "items": [{"sku": sku, "qty": 1}],
            "shipping_address": ADDRESS,
            "payment": {"method": "card", "token": "tok_audit"},
        },
    )
    assert ordered.status_code in (201, 202), ordered.text
    order_id: str = ordered.json()["id"]
    async with asyncio.timeout(DEADLINE_S):
        while True:
            order = await client.get(
                f"/api/v1/orders/{order_id}", headers={"Authorization": f"Bearer {access}"}
            )
            if order.json()["status"] == "CONFIRMED":
                return order_id
            assert order.json()["status"] in ("PENDING", "RESERVED", "PAID", "SHIPMENT_CREATED"), (
                order.text
            )
            await asyncio.sleep(0.2)


async def test_staff_actions_of_every_service_are_read_back_from_the_audit_log(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    admin_id = f"audit-admin-{uuid.uuid4().hex[:8]}"
    admin = _token(platform, admin_id, "admin")
    phone = new_phone()
    chat_id = new_chat_id()
    sku = f"AUDIT-{uuid.uuid4().hex[:8].upper()}"

    created = await client.post(
        "/api/v1/admin/products",
        headers=admin,
        json={"sku": sku, "name": "Audit lamp", "brand": "Acme", "category": "home",
              "price": 1500, "currency": "EUR", "initial_stock": 5},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    product_id = created.json()["id"]
    edited = await client.patch(
        f"/api/v1/admin/products/{product_id}",
        headers={**admin, "If-Match": created.headers["etag"]},
        json={"price": 1700},
    )
    assert edited.status_code == 200, edited.text
    stocked = await client.post(
        f"/api/v1/admin/products/{product_id}/stock",
        headers=admin,
        json={"delta": 3, "reason": "audit delivery"},
    )
    assert stocked.status_code == 200, stocked.text

    tokens = await telegram_login(client, phone, chat_id, deadline_s=DEADLINE_S)
    customer = {"Authorization": f"Bearer {tokens['access_token']}"}
    me = (await client.get("/api/v1/users/me", headers=customer)).json()
    moved_id = await _confirmed_order(client, tokens["access_token"], sku)
    cancelled_id = await _confirmed_order(client, tokens["access_token"], sku)
    moved = await client.post(
        f"/api/v1/admin/orders/{moved_id}/status", headers=admin, json={"status": "PROCESSING"}
    )
    assert moved.status_code == 200, moved.text
    cancelled = await client.post(f"/api/v1/admin/orders/{cancelled_id}/cancel", headers=admin)
    assert cancelled.status_code in (200, 202), cancelled.text

    # The customer becomes a moderator (their phone is proven by their chat).
    promoted = await client.put(
        f"/api/v1/admin/users/{me['id']}/roles",
        headers=admin,
        json={"roles": ["moderator", "customer"]},
    )
    assert promoted.status_code == 200, promoted.text
    refreshed = await client.post(
        "/api/v1/auth/token/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    moderator = {"Authorization": f"Bearer {refreshed.json()['access_token']}"}

    entries = await _entries(client, moderator, 6, actor=admin_id)
    by_action: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        by_action.setdefault(entry["action"], []).append(entry)
    assert {action: len(found) for action, found in by_action.items()} == {
        "product.created": 1,
        "product.updated": 1,
        "stock.adjusted": 1,
        "order.status_changed": 1,
        "order.cancelled": 1,
        "user.roles_changed": 1,
    }, entries
    [role] = by_action["user.roles_changed"]
    assert (role["service"], role["target_id"]) == ("auth", me["id"])
    assert role["before"] == {"roles": ["customer"]}
    assert role["after"] == {"roles": ["moderator", "customer"]}
    [edit] = by_action["product.updated"]
    assert (edit["service"], edit["target_id"]) == ("inventory", product_id)
    assert (edit["before"]["price"], edit["after"]["price"]) == (1500, 1700)
    [stock] = by_action["stock.adjusted"]
    assert (stock["before"]["on_hand"], stock["after"]["on_hand"]) == (5, 8)
    [move] = by_action["order.status_changed"]
    assert (move["target_id"], move["before"]["status"], move["after"]["status"]) == (
        moved_id,
        "CONFIRMED",
        "PROCESSING",
    )
    [cancel] = by_action["order.cancelled"]
    assert cancel["target_id"] == cancelled_id
    assert cancel["after"]["refund"]["amount"] == 1700
    for entry in entries:
        assert entry["actor_roles"] == ["admin"]
        assert entry["request_id"]
        assert entry["client_ip"]  # the gateway's view of the client, not the gateway

    only_orders = await _entries(client, moderator, 2, actor=admin_id, service="orders")
    assert {entry["action"] for entry in only_orders} == {
        "order.status_changed",
        "order.cancelled",
    }
    forbidden = await client.get(AUDIT, headers=customer)
    assert forbidden.status_code == 403
    assert forbidden.headers["content-type"] == "application/problem+json"
    for params in ({"since": "yesterday"}, {"before": "x"}, {"action": "Nope"}):
        bad = await client.get(AUDIT, params=params, headers=moderator)
        assert bad.status_code == 422, bad.text
        assert bad.headers["content-type"] == "application/problem+json"


async def test_entries_made_while_auth_is_down_arrive_once_it_is_back(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    assert platform.endpoints is not None
    admin_id = f"audit-late-{uuid.uuid4().hex[:8]}"
    admin = _token(platform, admin_id, "admin")
    created = await create_product(
        client,
        admin,
        {"sku": f"LATE-{uuid.uuid4().hex[:8].upper()}", "name": "Late", "brand": "Acme",
         "category": "home", "price": 100, "currency": "EUR"},
    )  # fmt: skip
    product_id = created["id"]

    platform.stop_service("auth")
    try:
        for n in range(3):
            stocked = await client.post(
                f"/api/v1/admin/products/{product_id}/stock",
                headers=admin,
                json={"delta": n + 1, "reason": f"while auth is down #{n}"},
            )
            assert stocked.status_code == 200, stocked.text
    finally:
        platform.start_service("auth")
    auth_url = platform.endpoints.service_url("auth")
    async with asyncio.timeout(60), httpx.AsyncClient(timeout=1) as direct:
        while True:
            try:
                if (await direct.get(f"{auth_url}/health/ready")).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)

    entries = await _entries(client, admin, 4, actor=admin_id)
    assert len(entries) == 4, entries
    assert len({entry["id"] for entry in entries}) == 4
    assert sorted(entry["action"] for entry in entries) == [
        "product.created",
        "stock.adjusted",
        "stock.adjusted",
        "stock.adjusted",
    ]
    reasons = sorted(e["after"]["reason"] for e in entries if e["action"] == "stock.adjusted")
    assert reasons == [f"while auth is down #{n}" for n in range(3)]
