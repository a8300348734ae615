"""The orders metrics operators read (docs/operations.md) move with real checkouts."""

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

Stack = Any  # the `stack` fixture of conftest.py (importlib mode: conftest is not importable)


async def samples(stack: Stack) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = (await stack.orders.get("/metrics")).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def grew(
    before: dict[tuple[str, frozenset[tuple[str, str]]], float],
    after: dict[tuple[str, frozenset[tuple[str, str]]], float],
    name: str,
    **labels: str,
) -> float:
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


async def test_checkout_outcomes_step_latency_and_failures_are_on_metrics(stack: Stack) -> None:
    product = await stack.product(on_hand=10)
    before = await samples(stack)
    confirmed = (await stack.checkout([{"sku": product["sku"], "qty": 1}])).json()
    assert confirmed["status"] == "CONFIRMED"
    await stack.payment_faults(mode="decline", operations=["authorize"])
    declined = (await stack.checkout([{"sku": product["sku"], "qty": 1}])).json()
    assert (declined["status"], declined["reason"]) == ("FAILED", "payment_declined")
    after = await samples(stack)

    # At least: a saga of an earlier test may settle meanwhile (counters are per process).
    # Checkouts per outcome.
    settled = "orders_saga_settled_total"
    assert grew(before, after, settled, status="CONFIRMED", reason="") >= 1
    assert grew(before, after, settled, status="FAILED", reason="payment_declined") >= 1
    # Step latency per step (each step names its provider).
    count = "orders_saga_step_seconds_count"
    assert grew(before, after, count, step="reserve_inventory") >= 2
    assert grew(before, after, count, step="capture_payment") >= 1
    # Failures per step and per provider.
    steps = "orders_saga_steps_total"
    assert grew(before, after, steps, step="authorize_payment", status="rejected") >= 1
    assert grew(before, after, steps, step="authorize_payment", status="succeeded") >= 1
    calls = "orders_provider_calls_total"
    rejected = grew(
        before, after, calls, provider="payments", operation="authorize", outcome="rejected"
    )
    assert rejected >= 1
    # Breaker state per provider: still closed after a business rejection.
    assert after[("circuit_breaker_state", frozenset({("breaker", "payments")}))] == 0
