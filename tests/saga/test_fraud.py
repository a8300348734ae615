"""Fraud rules on checkout through the real inventory service and provider sandboxes.

Refusals answer 403 and reserve or charge nothing; holds park the order ON_HOLD until
staff approve (the saga goes on) or reject it (compensation); every decision is on the
order's fraud step and raises an admin alert.
"""

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson

from storefront_stack.shop import UK_ADDRESS as ADDRESS

Stack = Any  # the `stack` fixture of conftest.py (importlib mode: conftest is not importable)


def rules(*items: dict[str, Any]) -> dict[str, Any]:
    """Orders settings with these fraud rules and counters of their own."""
    return {
        "fraud_rules": json.dumps(list(items)),
        "fraud_namespace": f"test:fraud:{uuid.uuid4().hex}",
    }


def steps(order: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {step["step"]: step for step in order["steps"]}


async def checkout(
    stack: Stack,
    sku: str,
    *,
    user: str,
    qty: int = 1,
    token: str = "tok_visa",
    client: str = "203.0.113.7",
    phone_ref: str | None = None,
) -> httpx.Response:
    return await stack.orders.post(
        "/api/v1/orders",
        json={
            "items": [{"sku": sku, "qty": qty}],
            "shipping_address": ADDRESS,
            "payment": {"method": "card", "token": token},
        },
        headers={
            **stack.user(user, phone_ref=phone_ref),
            "Idempotency-Key": uuid.uuid4().hex,
            "X-Real-IP": client,
        },
    )


async def review(stack: Stack, order_id: str, decision: str) -> httpx.Response:
    return await stack.orders.post(
        f"/api/v1/admin/orders/{order_id}/review",
        json={"decision": decision, "note": "checked by phone"},
        headers=stack.admin,
    )


@asynccontextmanager
async def alerts(stack: Stack) -> AsyncIterator[Callable[[], Any]]:
    """Collect ``admin.alerts`` while the block runs; call the yielded function to drain."""
    pubsub = stack.redis.pubsub()
    await pubsub.subscribe("admin.alerts")
    seen: list[dict[str, Any]] = []

    async def drain(settle_s: float = 1.0) -> list[dict[str, Any]]:
        # Until the channel stays quiet for settle_s (subscribe confirmations skipped).
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < settle_s:
            message = await pubsub.get_message(timeout=0.1)
            if message is not None and message["type"] == "message":
                seen.append(orjson.loads(message["data"]))
                quiet_since = time.monotonic()
        return seen

    try:
        yield drain
    finally:
        await pubsub.aclose()


def fresh_user() -> str:
    return f"fraud-{uuid.uuid4().hex[:10]}"


async def test_user_velocity_lets_exactly_the_limit_through_concurrent_checkouts(
    stack_factory: Callable[..., Any],
) -> None:
    limit, attempts = 3, 8
    rule = {"name": "user_velocity", "kind": "velocity_user", "limit": limit}
    async with stack_factory(**rules({**rule, "window_s": 3600, "action": "refuse"})) as stack:
        product = await stack.product(on_hand=20, price=500)
        user = fresh_user()
        async with alerts(stack) as drain:
            responses = await asyncio.gather(
                *(checkout(stack, product["sku"], user=user) for _ in range(attempts))
            )
            statuses = sorted(r.status_code for r in responses)
            assert statuses == [201] * limit + [403] * (attempts - limit), [
                r.text for r in responses
            ]
            refused = [r.json() for r in responses if r.status_code == 403]
            assert {p["code"] for p in refused} == {"checkout_refused"}
            confirmed = [r.json() for r in responses if r.status_code == 201]
            assert {o["status"] for o in confirmed} == {"CONFIRMED"}

            # Nothing reserved or charged for a refused checkout; the decision is recorded.
            assert await stack.stock(product) == {"on_hand": 17, "reserved": 0, "available": 17}
            for problem in refused:
                order = await stack.admin_order(problem["order_id"])
                assert (order["status"], order["reason"]) == ("FAILED", "fraud_refused")
                assert steps(order)["screen_fraud"]["status"] == "rejected"
                assert "user_velocity" in steps(order)["screen_fraud"]["last_error"]
                assert "reserve_inventory" not in steps(order)
                assert await stack.ledger(problem["order_id"]) == []
            seen = await drain()
        held = [a for a in seen if a["type"] == "fraud.refused"]
        assert sorted(a["data"]["order_id"] for a in held) == sorted(p["order_id"] for p in refused)
        assert all(a["data"]["rules"] == ["user_velocity"] for a in held)

        # Another user is not affected.
        other = await checkout(stack, product["sku"], user=fresh_user())
        assert other.status_code == 201, other.text


async def test_client_velocity_holds_before_reserving_and_approval_confirms(
    stack_factory: Callable[..., Any],
) -> None:
    rule = {"name": "address_velocity", "kind": "velocity_client", "limit": 1, "window_s": 600}
    async with stack_factory(**rules({**rule, "action": "hold"})) as stack:
        product = await stack.product(on_hand=5, price=700)
        address = f"198.51.100.{uuid.uuid4().int % 250 + 1}"
        first = await checkout(stack, product["sku"], user=fresh_user(), client=address)
        assert first.json()["status"] == "CONFIRMED", first.text

        async with alerts(stack) as drain:
            second = await checkout(stack, product["sku"], user=fresh_user(), client=address)
            assert second.status_code == 201, second.text
            order = second.json()
            assert order["status"] == "ON_HOLD"
            detail = await stack.admin_order(order["id"])
            held = steps(detail)["screen_fraud"]
            assert held["status"] == "held"
            assert held["result"]["rules"] == ["address_velocity"]
            assert held["result"]["signals"]["counts"] == {"address_velocity": 2}
            assert "reserve_inventory" not in steps(detail)
            assert await stack.stock(product) == {"on_hand": 4, "reserved": 0, "available": 4}
            # From another address the same product goes through.
            elsewhere = await checkout(stack, product["sku"], user=fresh_user(), client="192.0.2.9")
            assert elsewhere.json()["status"] == "CONFIRMED"

            approved = await review(stack, order["id"], "approve")
            assert approved.status_code == 200, approved.text
            assert approved.json()["status"] == "CONFIRMED"
            assert steps(approved.json())["screen_fraud"]["status"] == "succeeded"
            assert steps(approved.json())["screen_fraud"]["result"]["review"] == {
                "decision": "approve",
                "by": "admin-1",
                "note": "checked by phone",
            }
            assert [e["kind"] for e in await stack.ledger(order["id"])] == [
                "authorization",
                "capture",
            ]
            types = [a["type"] for a in await drain() if a["data"].get("order_id") == order["id"]]
        assert "fraud.held" in types
        assert "fraud.approved" in types

        again = await review(stack, order["id"], "approve")
        assert again.status_code == 409
        assert again.json()["code"] == "order_not_on_hold"


async def test_phone_velocity_counts_every_account_of_one_phone_and_no_other(
    stack_factory: Callable[..., Any],
) -> None:
    # Auth gives each phone one pseudonym in its access tokens (phone_ref), whichever
    # account it belongs to: a phone that opens account after account is still one phone.
    rule = {"name": "phone_velocity", "kind": "velocity_phone", "limit": 2, "window_s": 600}
    async with stack_factory(**rules({**rule, "action": "refuse"})) as stack:
        product = await stack.product(on_hand=10, price=400)
        phone, other_phone = uuid.uuid4().hex, uuid.uuid4().hex
        accounts = [fresh_user() for _ in range(3)]
        placed = [
            await checkout(stack, product["sku"], user=account, phone_ref=phone)
            for account in accounts
        ]
        assert [r.status_code for r in placed] == [201, 201, 403], [r.text for r in placed]
        refused = placed[2].json()
        assert refused["code"] == "checkout_refused"
        order = await stack.admin_order(refused["order_id"])
        assert (order["status"], order["reason"]) == ("FAILED", "fraud_refused")
        assert "phone_velocity" in steps(order)["screen_fraud"]["last_error"]
        # Another phone, and a token without a phone reference, are not counted with it.
        elsewhere = await checkout(stack, product["sku"], user=accounts[2], phone_ref=other_phone)
        assert elsewhere.json()["status"] == "CONFIRMED", elsewhere.text
        unlinked = await checkout(stack, product["sku"], user=fresh_user())
        assert unlinked.json()["status"] == "CONFIRMED", unlinked.text
        # The pseudonym is kept on the order, never shown to the customer.
        assert "phone_ref" not in elsewhere.json()


async def test_a_big_first_order_is_held_with_its_stock_and_rejection_releases_it(
    stack_factory: Callable[..., Any],
) -> None:
    rule = {"name": "big_first_order", "kind": "amount_new_account", "amount": 5000}
    async with stack_factory(**rules({**rule, "min_orders": 1, "action": "hold"})) as stack:
        product = await stack.product(on_hand=10, price=3000)
        user = fresh_user()
        small = await checkout(stack, product["sku"], user=user, qty=1)
        assert small.json()["status"] == "CONFIRMED", small.text  # 30.00: below the amount
        # Now a known customer: a big order goes through.
        big_known = await checkout(stack, product["sku"], user=user, qty=2)
        assert big_known.json()["status"] == "CONFIRMED", big_known.text

        newcomer = fresh_user()
        held = await checkout(stack, product["sku"], user=newcomer, qty=2)
        order = held.json()
        assert order["status"] == "ON_HOLD", held.text
        assert order["total"] == 6000
        assert await stack.stock(product) == {"on_hand": 7, "reserved": 2, "available": 5}
        detail = await stack.admin_order(order["id"])
        assert steps(detail)["check_fraud"]["status"] == "held"
        assert steps(detail)["check_fraud"]["result"]["signals"]["confirmed_orders"] == 0

        rejected = await review(stack, order["id"], "reject")
        assert rejected.status_code == 200, rejected.text
        body = rejected.json()
        assert (body["status"], body["reason"]) == ("FAILED", "fraud_rejected")
        assert body["reason_detail"] == "checked by phone"
        assert steps(body)["check_fraud"]["status"] == "rejected"
        assert steps(body)["release_inventory"]["status"] == "succeeded"
        assert await stack.stock(product) == {"on_hand": 7, "reserved": 0, "available": 7}
        assert await stack.ledger(order["id"]) == []


async def test_declines_in_a_row_refuse_the_next_checkout(
    stack_factory: Callable[..., Any],
) -> None:
    rule = {"name": "declines", "kind": "declined_in_row", "limit": 2, "action": "refuse"}
    async with stack_factory(**rules(rule)) as stack:
        product = await stack.product(on_hand=10, price=900)
        user = fresh_user()
        await stack.payment_faults(mode="decline", rate=1.0)
        try:
            for _ in range(2):
                declined = await checkout(stack, product["sku"], user=user)
                assert declined.json()["reason"] == "payment_declined", declined.text
        finally:
            await stack.payment_faults(mode="ok", rate=0.0)
        refused = await checkout(stack, product["sku"], user=user)
        assert refused.status_code == 403, refused.text
        assert refused.json()["code"] == "checkout_refused"
        # Someone else, and the stock, are untouched.
        assert (await checkout(stack, product["sku"], user=fresh_user())).status_code == 201
        assert await stack.stock(product) == {"on_hand": 9, "reserved": 0, "available": 9}


async def test_many_distinct_tokens_hold_and_the_customer_may_cancel_meanwhile(
    stack_factory: Callable[..., Any],
) -> None:
    rule = {"name": "many_cards", "kind": "distinct_tokens", "limit": 2, "window_s": 3600}
    async with stack_factory(**rules({**rule, "action": "hold"})) as stack:
        product = await stack.product(on_hand=10, price=400)
        user = fresh_user()
        for token in ("tok_one", "tok_two", "tok_two"):
            ok = await checkout(stack, product["sku"], user=user, token=token)
            assert ok.json()["status"] == "CONFIRMED", ok.text
        third = await checkout(stack, product["sku"], user=user, token="tok_three")
        order = third.json()
        assert order["status"] == "ON_HOLD", third.text

        cancelled = await stack.orders.post(
            f"/api/v1/orders/{order['id']}/cancel", headers=stack.user(user)
        )
        assert cancelled.status_code == 200, cancelled.text
        assert (cancelled.json()["status"], cancelled.json()["reason"]) == (
            "CANCELLED",
            "cancelled_by_customer",
        )
        assert await stack.stock(product) == {"on_hand": 7, "reserved": 0, "available": 7}
        late = await review(stack, order["id"], "approve")
        assert late.status_code == 409
