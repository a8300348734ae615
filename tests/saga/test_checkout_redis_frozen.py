"""A checkout while orders' Redis is frozen answers 202 as soon as the Redis watch knows,
not after its window (issue 22), and the saga completes once Redis is back, with no
restart.

Orders gets a Redis server of its own, frozen with SIGSTOP and resumed with SIGCONT in
a ``finally``; nothing else uses it. A checkout sent the moment Redis froze waits only
until the watch's pings have missed (it is released then); once the watch knows, every
checkout answers without waiting at all, and readiness reports the open breaker.
"""

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from orders_service.state import OrdersState
from storefront_kit.state import service_state
from storefront_stack import infra
from storefront_stack.processes import frozen

#: The window a checkout would wait for its saga; the old code waited it out while Redis
#: was frozen. Answers must come long before it (the bound is not a speed assertion).
WINDOW_S = 30.0
BOUND_S = 10.0
WATCH = {"redis_watch_interval_ms": 100, "redis_watch_timeout_ms": 100, "redis_watch_misses": 2}


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[str, int]]:
    with infra.started_redis(tmp_path / "redis") as url_and_pid:
        yield url_and_pid


async def test_a_checkout_with_redis_frozen_answers_202_at_once_and_confirms_after(
    stack_factory: Callable[..., Any], own_redis: tuple[str, int]
) -> None:
    url, pid = own_redis
    async with stack_factory(redis_url=url, checkout_wait_s=WINDOW_S, **WATCH) as stack:
        breaker = service_state(stack.orders_app, OrdersState).redis_breaker
        product = await stack.product(on_hand=5)
        line = [{"sku": product["sku"], "qty": 1}]
        before = await stack.checkout(line)
        with frozen(pid):
            # Sent before the watch can know: it waits for the saga until the watch trips.
            first = await asyncio.wait_for(stack.checkout(line), timeout=BOUND_S)
            was_open = breaker.is_open
            later = [
                await asyncio.wait_for(stack.checkout(line), timeout=BOUND_S) for _ in range(2)
            ]
            ready = await asyncio.wait_for(stack.orders.get("/health/ready"), timeout=BOUND_S)
        during = [first, *later]
        settled = [await stack.wait_settled(r.json()["id"], timeout=60) for r in during]
        stock = await stack.stock(product)

        for _ in range(int(BOUND_S / 0.05)):  # the watch's next ping closes the breaker
            if breaker.state == "closed":
                break
            await asyncio.sleep(0.05)
        after = await stack.orders.get("/health/ready")

    # The first checkout was released by the watch finding Redis down.
    assert was_open
    assert before.status_code == 201, before.text
    for response in during:
        assert response.status_code == 202, response.text
        assert response.headers["location"] == f"/api/v1/orders/{response.json()['id']}"
    assert ready.status_code == 503
    assert ready.json()["checks"]["redis"] == "down: BreakerOpen"
    assert [order["status"] for order in settled] == ["CONFIRMED"] * 3
    assert stock == {"on_hand": 1, "reserved": 0, "available": 1}
    # Thawed: the watch's ping closed the breaker, no restart.
    assert after.status_code == 200
