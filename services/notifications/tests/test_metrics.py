"""The consumer group's backlog and dead letters on notifications' /metrics
(docs/operations.md): what operators read to know the receipts are flowing."""

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from .conftest import Stack, event, eventually, new_chat_id

LABELS = {"stream": "orders.events", "group": "notifications"}


async def sample(stack: Stack, name: str) -> float | None:
    text = (await stack.client.get("/metrics")).text
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and found.labels == LABELS:
                return float(found.value)
    return None


async def test_dead_letters_lag_and_pending_of_the_group_are_exposed(start_stack: Any) -> None:
    # Claims (and with them the backlog gauges) every second.
    async with start_stack(consumer_claim_idle_ms=2000, claim_lease_s=1.0) as stack:
        before = await sample(stack, "stream_dead_letters_total") or 0.0
        user_id, _ = await stack.linked_user(new_chat_id())
        await stack.publish(event("payment.captured", {"order_id": "o-1", "user_id": str(user_id)}))
        await eventually(stack.settled, timeout=10)

        async def dead_lettered() -> bool:
            return await sample(stack, "stream_dead_letters_total") == before + 1

        async def backlog_reported() -> bool:
            lag = await sample(stack, "stream_consumer_lag")
            pending = await sample(stack, "stream_consumer_pending")
            return (lag, pending) == (0, 0)

        assert await eventually(dead_lettered)
        assert await eventually(backlog_reported, timeout=10)
