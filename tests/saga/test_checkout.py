"""Checkout through the real inventory service and provider sandboxes (docs/design.md §6)."""

import asyncio
from typing import Any

from prometheus_client import REGISTRY

Stack = Any  # the `stack` fixture of conftest.py (importlib mode: conftest is not importable)


def kinds(entries: list[dict[str, Any]]) -> list[str]:
    return [entry["kind"] for entry in entries]


def steps(order: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {step["step"]: step for step in order["steps"]}


async def test_happy_path_confirms_commits_stock_and_captures_once(stack: Stack) -> None:
    product = await stack.product(on_hand=10, price=1250)
    response = await stack.checkout([{"sku": product["sku"], "qty": 3}])

    assert response.status_code == 201, response.text
    order = response.json()
    assert order["status"] == "CONFIRMED"
    assert order["reason"] is None
    assert response.headers["location"] == f"/api/v1/orders/{order['id']}"
    assert order["lines"] == [
        {
            "sku": product["sku"],
            "qty": 3,
            "unit_price": 1250,
            "currency": "EUR",
            "name": "Saga test product",
        }
    ]
    assert (order["total"], order["currency"]) == (3750, "EUR")
    assert order["tracking_number"].startswith("SBX")

    assert await stack.stock(product) == {"on_hand": 7, "reserved": 0, "available": 7}
    ledger = await stack.ledger(order["id"])
    assert kinds(ledger) == ["authorization", "capture"]
    assert ledger[1]["amount"] == 3750
    shipments = await stack.shipments(order["id"])
    assert [s["status"] for s in shipments] == ["created"]
    assert shipments[0]["tracking_number"] == order["tracking_number"]

    detail = await stack.admin_order(order["id"])
    assert {name: s["status"] for name, s in steps(detail).items()} == {
        "screen_fraud": "skipped",  # no fraud rule configured
        "reserve_inventory": "succeeded",
        "check_fraud": "skipped",
        "authorize_payment": "succeeded",
        "capture_payment": "succeeded",
        "create_shipment": "succeeded",
        "commit_inventory": "succeeded",
    }
    events = await stack.wait_events(
        order["id"], "order.created", "payment.captured", "order.confirmed"
    )
    confirmed = next(e for e in events if e["type"] == "order.confirmed")
    assert confirmed["source"] == "orders"
    assert confirmed["data"]["user_id"] == "user-1"
    assert confirmed["data"]["total"] == 3750
    assert confirmed["data"]["lines"] == order["lines"]
    statuses = [e["data"]["status"] for e in events if e["type"] == "order.status_changed"]
    assert statuses == ["RESERVED", "PAID", "SHIPMENT_CREATED", "CONFIRMED"]


async def test_out_of_stock_fails_and_charges_nothing(stack: Stack) -> None:
    product = await stack.product(on_hand=2)
    response = await stack.checkout([{"sku": product["sku"], "qty": 5}])

    assert response.status_code == 201, response.text
    order = response.json()
    assert (order["status"], order["reason"]) == ("FAILED", "out_of_stock")
    assert await stack.ledger(order["id"]) == []
    assert await stack.stock(product) == {"on_hand": 2, "reserved": 0, "available": 2}
    detail = await stack.admin_order(order["id"])
    assert steps(detail)["reserve_inventory"]["status"] == "rejected"
    assert "authorize_payment" not in steps(detail)
    events = await stack.wait_events(order["id"], "order.failed")
    failed = next(e for e in events if e["type"] == "order.failed")
    assert failed["data"]["reason"] == "out_of_stock"


async def test_declined_payment_fails_and_releases_stock(stack: Stack) -> None:
    product = await stack.product(on_hand=5)
    await stack.payment_faults(mode="decline", operations=["authorize"])
    response = await stack.checkout([{"sku": product["sku"], "qty": 2}])

    order = response.json()
    assert (order["status"], order["reason"]) == ("FAILED", "payment_declined")
    assert "declined" in order["reason_detail"]
    assert await stack.stock(product) == {"on_hand": 5, "reserved": 0, "available": 5}
    assert await stack.ledger(order["id"]) == []
    detail = steps(await stack.admin_order(order["id"]))
    assert detail["authorize_payment"]["status"] == "rejected"
    assert detail["release_inventory"]["status"] == "succeeded"
    assert "refund_payment" not in detail


async def test_payment_timeouts_are_retried_then_compensated(stack: Stack) -> None:
    product = await stack.product(on_hand=5)
    await stack.payment_faults(mode="timeout", operations=["authorize"])
    response = await stack.checkout([{"sku": product["sku"], "qty": 1}])

    order = response.json()
    assert (order["status"], order["reason"]) == ("FAILED", "payment_unavailable")
    faults = (await stack.payments.get("/faults")).json()
    assert faults["injected"] == 3  # three attempts, then the saga gave up
    assert await stack.stock(product) == {"on_hand": 5, "reserved": 0, "available": 5}
    assert await stack.ledger(order["id"]) == []
    detail = steps(await stack.admin_order(order["id"]))
    assert detail["authorize_payment"]["status"] == "failed"
    assert detail["release_inventory"]["status"] == "succeeded"


async def test_shipping_failure_after_payment_refunds_then_releases(stack: Stack) -> None:
    product = await stack.product(on_hand=5)
    await stack.shipping_faults(mode="reject", operations=["create"])
    response = await stack.checkout([{"sku": product["sku"], "qty": 2}])

    order = response.json()
    assert (order["status"], order["reason"]) == ("FAILED", "shipment_rejected")
    assert kinds(await stack.ledger(order["id"])) == ["authorization", "capture", "refund"]
    assert await stack.stock(product) == {"on_hand": 5, "reserved": 0, "available": 5}
    detail = steps(await stack.admin_order(order["id"]))
    assert detail["refund_payment"]["status"] == "succeeded"
    assert detail["release_inventory"]["status"] == "succeeded"
    assert detail["refund_payment"]["updated_at"] <= detail["release_inventory"]["updated_at"]
    events = await stack.wait_events(order["id"], "payment.refunded", "order.failed")
    refunded = next(e for e in events if e["type"] == "payment.refunded")
    assert refunded["data"]["amount"] == order["total"]
    assert refunded["data"]["user_id"] == "user-1"


async def test_a_transient_error_is_retried_and_the_order_confirmed(stack: Stack) -> None:
    product = await stack.product(on_hand=5)
    await stack.payment_faults(mode="error", operations=["authorize"], times=1)
    response = await stack.checkout([{"sku": product["sku"], "qty": 1}])

    assert response.json()["status"] == "CONFIRMED"
    assert (await stack.payments.get("/faults")).json()["injected"] == 1
    assert kinds(await stack.ledger(response.json()["id"])) == ["authorization", "capture"]


async def test_same_key_twice_makes_one_order(stack: Stack) -> None:
    product = await stack.product(on_hand=5)
    items = [{"sku": product["sku"], "qty": 1}]
    first = await stack.checkout(items, key="key-twice")
    second = await stack.checkout(items, key="key-twice")

    assert first.status_code == 201
    assert second.status_code == 200
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json() == first.json()
    assert kinds(await stack.ledger(first.json()["id"])) == ["authorization", "capture"]
    assert await stack.stock(product) == {"on_hand": 4, "reserved": 0, "available": 4}


async def test_same_key_with_another_body_is_a_conflict(stack: Stack) -> None:
    product = await stack.product(on_hand=5)
    first = await stack.checkout([{"sku": product["sku"], "qty": 1}], key="key-reused")
    second = await stack.checkout([{"sku": product["sku"], "qty": 2}], key="key-reused")

    assert second.status_code == 409
    assert second.headers["content-type"] == "application/problem+json"
    assert second.json()["code"] == "idempotency_key_reused"
    assert second.json()["order_id"] == first.json()["id"]
    assert await stack.stock(product) == {"on_hand": 4, "reserved": 0, "available": 4}


async def test_customers_see_only_their_own_orders(stack: Stack) -> None:
    product = await stack.product(on_hand=5)
    mine = (await stack.checkout([{"sku": product["sku"], "qty": 1}], user="alice")).json()

    theirs = await stack.orders.get(f"/api/v1/orders/{mine['id']}", headers=stack.user("bob"))
    assert theirs.status_code == 404
    assert theirs.json()["code"] == "order_not_found"
    cancel = await stack.orders.post(
        f"/api/v1/orders/{mine['id']}/cancel", headers=stack.user("bob")
    )
    assert cancel.status_code == 404
    listed = (await stack.orders.get("/api/v1/orders", headers=stack.user("bob"))).json()
    assert listed["items"] == []
    own = await stack.orders.get(f"/api/v1/orders/{mine['id']}", headers=stack.user("alice"))
    assert own.json()["id"] == mine["id"]


async def test_cancel_after_confirmation_refunds_and_cancels_the_parcel(stack: Stack) -> None:
    product = await stack.product(on_hand=5)
    order = (await stack.checkout([{"sku": product["sku"], "qty": 2}])).json()
    assert order["status"] == "CONFIRMED"

    response = await stack.orders.post(
        f"/api/v1/orders/{order['id']}/cancel", headers=stack.user("user-1")
    )
    assert response.status_code == 200, response.text
    cancelled = response.json()
    assert (cancelled["status"], cancelled["reason"]) == ("CANCELLED", "cancelled_by_customer")
    assert kinds(await stack.ledger(order["id"])) == ["authorization", "capture", "refund"]
    assert [s["status"] for s in await stack.shipments(order["id"])] == ["cancelled"]
    again = await stack.orders.post(
        f"/api/v1/orders/{order['id']}/cancel", headers=stack.user("user-1")
    )
    assert again.status_code == 200
    assert kinds(await stack.ledger(order["id"])) == ["authorization", "capture", "refund"]
    assert await stack.stock(product) == {"on_hand": 5, "reserved": 0, "available": 5}


async def test_a_cancel_while_a_step_runs_wins_over_the_outcome_it_finds(stack: Stack) -> None:
    # The saga writes a step's outcome without reading the row again, guarded by the
    # row as it last wrote it: a cancel asked while the payment is being authorized
    # changed the row, so the outcome is written on the row read again, and the cancel
    # wins (compensated: the authorization voided, the stock released).
    product = await stack.product(on_hand=5)
    await stack.payment_faults(mode="ok", latency_ms=1500, operations=["authorize"])
    changed_before = REGISTRY.get_sample_value("orders_saga_row_changed_total") or 0.0
    checkout = asyncio.create_task(stack.checkout([{"sku": product["sku"], "qty": 2}]))
    order_id = None
    for _ in range(200):
        listed = await stack.orders.get("/api/v1/orders", headers=stack.user("user-1"))
        found = [o for o in listed.json()["items"] if o["status"] == "RESERVED"]
        if found:
            order_id = found[0]["id"]
            break
        await asyncio.sleep(0.02)
    assert order_id is not None, "the saga never reached the payment"
    cancel = await stack.orders.post(
        f"/api/v1/orders/{order_id}/cancel", headers=stack.user("user-1")
    )
    assert cancel.status_code in (200, 202), cancel.text
    order = (await checkout).json()
    if order["status"] != "CANCELLED":
        order = await stack.wait_settled(order_id)
    assert (order["status"], order["reason"]) == ("CANCELLED", "cancelled_by_customer")
    assert await stack.stock(product) == {"on_hand": 5, "reserved": 0, "available": 5}
    ledger = await stack.ledger(order_id)
    assert kinds(ledger)[0] == "authorization"
    assert "capture" not in kinds(ledger)
    detail = steps(await stack.admin_order(order_id))
    assert detail["authorize_payment"]["status"] == "succeeded"
    assert "capture_payment" not in detail
    assert detail["release_inventory"]["status"] == "succeeded"
    assert (REGISTRY.get_sample_value("orders_saga_row_changed_total") or 0.0) > changed_before
