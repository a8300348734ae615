"""The payment breaker opens after repeated failures, fails fast, alerts, and closes again."""

import asyncio
import time
from typing import Any

import orjson

from orders_service.state import OrdersState
from storefront_kit.state import service_state

Stack = Any  # the `stack` fixture of conftest.py


async def _alerts(pubsub: Any, *, timeout: float = 3.0) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if message is not None:
            found.append(orjson.loads(message["data"]))
        elif found:
            break
    return found


async def test_breaker_opens_fails_fast_and_closes_after_a_trial(stack_factory: Any) -> None:
    async with stack_factory(breaker_fail_max=3, breaker_reset_timeout_s=2.0) as stack:
        pubsub = stack.redis.pubsub()
        await pubsub.subscribe("admin.alerts")
        product = await stack.product(on_hand=20)
        items = [{"sku": product["sku"], "qty": 1}]
        await stack.payment_faults(mode="error", operations=["authorize"])

        first = (await stack.checkout(items)).json()
        assert (first["status"], first["reason"]) == ("FAILED", "payment_unavailable")
        assert (await stack.payments.get("/faults")).json()["injected"] == 3
        breaker = service_state(stack.orders_app, OrdersState).breakers["payments"]
        assert await breaker.state() == "open"

        # Failing fast is the provider never being called (no attempt, no retry back-off),
        # not a wall-clock bound that a loaded machine can miss.
        second = (await stack.checkout(items)).json()
        assert (second["status"], second["reason"]) == ("FAILED", "payment_circuit_open")
        assert (await stack.payments.get("/faults")).json()["injected"] == 3  # never called
        detail = await stack.admin_order(second["id"])
        authorize = next(s for s in detail["steps"] if s["step"] == "authorize_payment")
        assert authorize["status"] == "rejected"

        alerts = await _alerts(pubsub)
        opened = [a for a in alerts if a["type"] == "circuit.opened"]
        assert len(opened) == 1
        assert opened[0]["data"] == {"breaker": "payments", "reset_timeout_s": 2.0}
        assert {"order.created", "saga.failed"} <= {a["type"] for a in alerts}
        metrics = (await stack.orders.get("/metrics")).text
        assert 'circuit_breaker_state{breaker="payments"} 2.0' in metrics

        await stack.payment_faults(mode="ok")
        await asyncio.sleep(2.1)
        third = (await stack.checkout(items)).json()
        assert third["status"] == "CONFIRMED"
        assert await breaker.state() == "closed"
        assert await stack.stock(product) == {"on_hand": 19, "reserved": 0, "available": 19}
        await pubsub.aclose()
