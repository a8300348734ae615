"""Staff views and moves of orders (docs/design.md §4 Admin, §5 events, §6 staff moves)."""

import asyncio
import time
import uuid
from typing import Any

import orjson

Stack = Any  # the `stack` fixture of conftest.py (importlib mode: conftest is not importable)

ADMIN_ORDERS = "/api/v1/admin/orders"


def kinds(entries: list[dict[str, Any]]) -> list[str]:
    return [entry["kind"] for entry in entries]


def steps(order: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {step["step"]: step for step in order["steps"]}


def unique_user(prefix: str) -> str:
    """Orders share one database across tests: each test lists only its own users."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def move(stack: Stack, order_id: str, status: str, **headers: str) -> Any:
    return await stack.orders.post(
        f"{ADMIN_ORDERS}/{order_id}/status",
        json={"status": status},
        headers=headers or stack.admin,
    )


async def status_changes(stack: Stack, order_id: str, *statuses: str) -> list[dict[str, Any]]:
    """``order.status_changed`` envelopes of an order once every status in ``statuses`` is in."""
    deadline = time.monotonic() + 5.0
    while True:
        changes = [e for e in await stack.events(order_id) if e["type"] == "order.status_changed"]
        if set(statuses) <= {e["data"]["status"] for e in changes}:
            return changes
        assert time.monotonic() < deadline, [e["data"]["status"] for e in changes]
        await asyncio.sleep(0.05)


async def drain_alerts(pubsub: Any, *types: str, timeout: float = 5.0) -> list[dict[str, Any]]:
    """Alerts read from ``admin.alerts`` until every type in ``types`` arrived."""
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while not set(types) <= {a["type"] for a in found}:
        assert time.monotonic() < deadline, [a["type"] for a in found]
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if message is not None:
            found.append(orjson.loads(message["data"]))
    return found


async def test_staff_list_filter_and_read_any_order(stack: Stack) -> None:
    product = await stack.product(on_hand=3)
    alice, bob = unique_user("alice"), unique_user("bob")
    confirmed = (await stack.checkout([{"sku": product["sku"], "qty": 1}], user=alice)).json()
    failed = (await stack.checkout([{"sku": product["sku"], "qty": 9}], user=alice)).json()
    other = (await stack.checkout([{"sku": product["sku"], "qty": 1}], user=bob)).json()
    assert (confirmed["status"], failed["status"], other["status"]) == (
        "CONFIRMED",
        "FAILED",
        "CONFIRMED",
    )

    listed = await stack.orders.get(ADMIN_ORDERS, params={"user_id": alice}, headers=stack.admin)
    assert listed.status_code == 200, listed.text
    page = listed.json()
    assert (page["total"], page["page"], page["size"]) == (2, 1, 20)
    assert [o["id"] for o in page["items"]] == [failed["id"], confirmed["id"]]  # newest first
    assert {o["user_id"] for o in page["items"]} == {alice}

    only_failed = await stack.orders.get(
        ADMIN_ORDERS, params={"user_id": alice, "status": "FAILED"}, headers=stack.admin
    )
    assert [o["id"] for o in only_failed.json()["items"]] == [failed["id"]]
    assert only_failed.json()["items"][0]["reason"] == "out_of_stock"
    both = await stack.orders.get(
        ADMIN_ORDERS,
        params=[("user_id", alice), ("status", "FAILED"), ("status", "CONFIRMED")],
        headers=stack.admin,
    )
    assert both.json()["total"] == 2
    paged = await stack.orders.get(
        ADMIN_ORDERS, params={"user_id": alice, "size": 1, "page": 2}, headers=stack.admin
    )
    assert [o["id"] for o in paged.json()["items"]] == [confirmed["id"]]
    assert paged.json()["total"] == 2

    detail = await stack.orders.get(f"{ADMIN_ORDERS}/{other['id']}", headers=stack.admin)
    assert detail.status_code == 200
    body = detail.json()
    assert (body["user_id"], body["status"]) == (bob, "CONFIRMED")
    assert body["payment_id"].startswith("pay_")
    assert body["shipment_id"]
    assert body["lease_owner"] is None
    assert list(steps(body)) == [
        "screen_fraud",
        "reserve_inventory",
        "check_fraud",
        "authorize_payment",
        "capture_payment",
        "create_shipment",
        "commit_inventory",
    ]
    assert all(s["attempts"] == 1 and s["kind"] == "action" for s in body["steps"])

    missing = await stack.orders.get(f"{ADMIN_ORDERS}/{uuid.uuid4()}", headers=stack.admin)
    assert missing.status_code == 404
    assert missing.json()["code"] == "order_not_found"
    too_big = await stack.orders.get(ADMIN_ORDERS, params={"size": 1000}, headers=stack.admin)
    assert too_big.status_code == 422
    assert too_big.headers["content-type"] == "application/problem+json"


async def test_admin_moves_an_order_to_delivered_with_an_event_per_step(stack: Stack) -> None:
    product = await stack.product(on_hand=5)
    user = unique_user("buyer")
    order = (await stack.checkout([{"sku": product["sku"], "qty": 2}], user=user)).json()
    assert order["status"] == "CONFIRMED"
    version = (await stack.admin_order(order["id"]))["version"]

    for status in ("PROCESSING", "SHIPPED", "DELIVERED"):
        response = await move(stack, order["id"], status)
        assert response.status_code == 200, response.text
        moved = response.json()
        assert moved["status"] == status
        assert moved["version"] == version + 1
        version = moved["version"]

    changes = await status_changes(stack, order["id"], "PROCESSING", "SHIPPED", "DELIVERED")
    admin_moves = [(e["data"]["previous"], e["data"]["status"]) for e in changes][-3:]
    assert admin_moves == [
        ("CONFIRMED", "PROCESSING"),
        ("PROCESSING", "SHIPPED"),
        ("SHIPPED", "DELIVERED"),
    ]
    for event in changes[-3:]:
        assert event["source"] == "orders"
        assert event["version"] == 1
        assert event["data"]["order_id"] == order["id"]
        assert event["data"]["user_id"] == user
        assert event["data"]["tracking_number"] == order["tracking_number"]
    mine = await stack.orders.get(f"/api/v1/orders/{order['id']}", headers=stack.user(user))
    assert mine.json()["status"] == "DELIVERED"

    # Asking again for the status it already has changes nothing and emits nothing.
    again = await move(stack, order["id"], "DELIVERED")
    assert again.status_code == 200
    assert again.json()["version"] == version
    assert len(await status_changes(stack, order["id"], "DELIVERED")) == len(changes)


async def test_illegal_transitions_are_conflicts_that_change_nothing(stack: Stack) -> None:
    product = await stack.product(on_hand=5)
    failed = (await stack.checkout([{"sku": product["sku"], "qty": 50}])).json()
    order = (await stack.checkout([{"sku": product["sku"], "qty": 1}])).json()
    assert (failed["status"], order["status"]) == ("FAILED", "CONFIRMED")

    skip = await move(stack, order["id"], "SHIPPED")  # CONFIRMED cannot skip PROCESSING
    assert skip.status_code == 409
    assert skip.headers["content-type"] == "application/problem+json"
    problem = skip.json()
    assert problem["code"] == "invalid_status_transition"
    # The RFC 9457 ``status`` stays the HTTP status; the order's is ``order_status``.
    assert (problem["status"], problem["order_status"], problem["requested"]) == (
        409,
        "CONFIRMED",
        "SHIPPED",
    )
    assert problem["type"] == "https://storefront.dev/problems/invalid-status-transition"

    dead = await move(stack, failed["id"], "PROCESSING")
    assert dead.status_code == 409
    assert dead.json()["order_status"] == "FAILED"

    for status in ("PROCESSING", "SHIPPED", "DELIVERED"):
        assert (await move(stack, order["id"], status)).status_code == 200
    before = await stack.admin_order(order["id"])
    # The relay publishes after the commit: wait for the last accepted move's event, or
    # it could land after the snapshot and look like one the refused moves staged.
    await status_changes(stack, order["id"], "DELIVERED")
    events_before = await stack.events(order["id"])
    back = await move(stack, order["id"], "PROCESSING")
    assert back.status_code == 409
    assert (back.json()["order_status"], back.json()["requested"]) == ("DELIVERED", "PROCESSING")
    not_a_target = await move(stack, order["id"], "CONFIRMED")
    assert not_a_target.status_code == 422

    after = await stack.admin_order(order["id"])
    assert (after["status"], after["version"]) == ("DELIVERED", before["version"])
    assert after["updated_at"] == before["updated_at"]
    assert await stack.events(order["id"]) == events_before
    assert (await stack.admin_order(failed["id"]))["status"] == "FAILED"


async def test_moderators_read_but_cannot_move_or_cancel(stack: Stack) -> None:
    product = await stack.product(on_hand=5)
    order = (await stack.checkout([{"sku": product["sku"], "qty": 1}])).json()
    moderator = stack.user("mod-1", "moderator")

    listed = await stack.orders.get(ADMIN_ORDERS, headers=moderator)
    assert listed.status_code == 200
    assert order["id"] in {o["id"] for o in listed.json()["items"]}
    read = await stack.orders.get(f"{ADMIN_ORDERS}/{order['id']}", headers=moderator)
    assert read.status_code == 200
    assert read.json()["status"] == "CONFIRMED"

    moved = await move(stack, order["id"], "PROCESSING", **moderator)
    assert moved.status_code == 403
    assert moved.headers["content-type"] == "application/problem+json"
    assert moved.json()["status"] == 403
    cancel = await stack.orders.post(f"{ADMIN_ORDERS}/{order['id']}/cancel", headers=moderator)
    assert cancel.status_code == 403
    after = await stack.admin_order(order["id"])
    assert (after["status"], after["version"]) == ("CONFIRMED", read.json()["version"])
    assert kinds(await stack.ledger(order["id"])) == ["authorization", "capture"]


async def test_customers_and_anonymous_callers_cannot_use_admin_routes(stack: Stack) -> None:
    product = await stack.product(on_hand=5)
    order = (await stack.checkout([{"sku": product["sku"], "qty": 1}], user="cust-1")).json()
    customer = stack.user("cust-1")

    for method, path, body in (
        ("GET", ADMIN_ORDERS, None),
        ("GET", f"{ADMIN_ORDERS}/{order['id']}", None),
        ("POST", f"{ADMIN_ORDERS}/{order['id']}/status", {"status": "PROCESSING"}),
        ("POST", f"{ADMIN_ORDERS}/{order['id']}/cancel", None),
    ):
        as_customer = await stack.orders.request(method, path, json=body, headers=customer)
        assert as_customer.status_code == 403, (path, as_customer.text)
        assert as_customer.json()["code"] == "forbidden"
        anonymous = await stack.orders.request(method, path, json=body)
        assert anonymous.status_code == 401, (path, anonymous.text)
    assert (await stack.admin_order(order["id"]))["status"] == "CONFIRMED"
    assert kinds(await stack.ledger(order["id"])) == ["authorization", "capture"]


async def test_admin_cancel_refunds_and_cancels_the_parcel(stack: Stack) -> None:
    product = await stack.product(on_hand=5, price=2000)
    user = unique_user("buyer")
    order = (await stack.checkout([{"sku": product["sku"], "qty": 2}], user=user)).json()
    assert (await move(stack, order["id"], "PROCESSING")).status_code == 200

    response = await stack.orders.post(f"{ADMIN_ORDERS}/{order['id']}/cancel", headers=stack.admin)
    assert response.status_code == 200, response.text
    cancelled = response.json()
    assert (cancelled["status"], cancelled["reason"]) == ("CANCELLED", "cancelled_by_admin")
    assert cancelled["lease_owner"] is None
    done = steps(cancelled)
    assert done["refund_payment"]["status"] == "succeeded"
    assert done["refund_payment"]["result"]["refunded"] == [
        {"payment_id": cancelled["payment_id"], "amount": 4000, "currency": "EUR"}
    ]
    assert done["cancel_shipment"]["status"] == "succeeded"
    # The sale is undone in inventory too: its two units are back on hand.
    assert done["release_inventory"]["status"] == "succeeded"
    assert done["release_inventory"]["result"] == {"status": "returned"}
    assert await stack.stock(product) == {"on_hand": 5, "reserved": 0, "available": 5}
    ledger = await stack.ledger(order["id"])
    assert kinds(ledger) == ["authorization", "capture", "refund"]
    assert ledger[2]["amount"] == 4000
    assert [s["status"] for s in await stack.shipments(order["id"])] == ["cancelled"]

    events = await stack.wait_events(order["id"], "payment.refunded")
    refunded = next(e for e in events if e["type"] == "payment.refunded")
    assert refunded["data"]["reason"] == "cancelled_by_admin"
    assert refunded["data"]["user_id"] == user
    changes = await status_changes(stack, order["id"], "COMPENSATING", "CANCELLED")
    assert [(e["data"]["previous"], e["data"]["status"]) for e in changes][-2:] == [
        ("PROCESSING", "COMPENSATING"),
        ("COMPENSATING", "CANCELLED"),
    ]
    assert changes[-1]["data"]["reason"] == "cancelled_by_admin"

    again = await stack.orders.post(f"{ADMIN_ORDERS}/{order['id']}/cancel", headers=stack.admin)
    assert again.status_code == 200
    assert again.json()["status"] == "CANCELLED"
    assert kinds(await stack.ledger(order["id"])) == ["authorization", "capture", "refund"]
    assert await stack.stock(product) == {"on_hand": 5, "reserved": 0, "available": 5}
    for status in ("SHIPPED", "PROCESSING"):
        refused = await move(stack, order["id"], status)
        assert refused.status_code == 409
        assert refused.json()["order_status"] == "CANCELLED"


async def test_a_shipped_order_cannot_be_cancelled(stack: Stack) -> None:
    product = await stack.product(on_hand=5)
    order = (await stack.checkout([{"sku": product["sku"], "qty": 1}])).json()
    for status in ("PROCESSING", "SHIPPED"):
        assert (await move(stack, order["id"], status)).status_code == 200

    response = await stack.orders.post(f"{ADMIN_ORDERS}/{order['id']}/cancel", headers=stack.admin)
    assert response.status_code == 409
    assert (response.json()["code"], response.json()["order_status"]) == (
        "order_not_cancellable",
        "SHIPPED",
    )
    assert (await stack.admin_order(order["id"]))["status"] == "SHIPPED"
    assert kinds(await stack.ledger(order["id"])) == ["authorization", "capture"]


async def test_new_orders_and_failed_sagas_are_published_to_admins(stack: Stack) -> None:
    pubsub = stack.redis.pubsub()
    await pubsub.subscribe("admin.alerts")
    try:
        product = await stack.product(on_hand=5, price=700)
        user = unique_user("buyer")
        order = (await stack.checkout([{"sku": product["sku"], "qty": 2}], user=user)).json()
        created = [
            a for a in await drain_alerts(pubsub, "order.created") if a["type"] == "order.created"
        ]
        assert len(created) == 1
        assert created[0]["data"]["order_id"] == order["id"]
        assert created[0]["data"]["user_id"] == user
        assert (created[0]["data"]["total"], created[0]["data"]["currency"]) == (1400, "EUR")
        assert created[0]["data"]["lines"][0]["sku"] == product["sku"]
        assert created[0]["occurred_at"]

        await stack.payment_faults(mode="decline", operations=["authorize"])
        failed = (await stack.checkout([{"sku": product["sku"], "qty": 1}], user=user)).json()
        assert failed["status"] == "FAILED"
        alerts = await drain_alerts(pubsub, "saga.failed")
        assert [a["type"] for a in alerts] == ["order.created", "saga.failed"]
        saga_failed = alerts[1]["data"]
        assert saga_failed["order_id"] == failed["id"]
        assert saga_failed["user_id"] == user
        assert (saga_failed["status"], saga_failed["reason"]) == ("FAILED", "payment_declined")
        assert (saga_failed["total"], saga_failed["currency"]) == (700, "EUR")
    finally:
        await pubsub.aclose()
