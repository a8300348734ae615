"""A checkout while orders' Redis is frozen answers 202 at once, not after its window
(issue 22), and the saga completes once Redis is back, with no restart.

Orders gets a Redis server of its own, frozen with SIGSTOP and resumed with SIGCONT in
a ``finally``; nothing else uses it.
"""

import asyncio
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from storefront_stack import infra
from storefront_stack.processes import free_port

#: The window a checkout would wait for its saga; the old code waited it out while Redis
#: was frozen. Answers must come long before it (the bound is not a speed assertion).
WINDOW_S = 30.0
BOUND_S = 10.0


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[str, int]]:
    port = free_port()
    server = infra.start_redis(tmp_path / "redis", port, persistent=False)
    try:
        import psutil

        pid = next(
            c.pid
            for c in psutil.net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port and c.pid
        )
        yield server.url, pid
    finally:
        server.stop()


async def test_a_checkout_with_redis_frozen_answers_202_at_once_and_confirms_after(
    stack_factory: Callable[..., Any], own_redis: tuple[str, int]
) -> None:
    url, pid = own_redis
    async with stack_factory(redis_url=url, checkout_wait_s=WINDOW_S) as stack:
        product = await stack.product(on_hand=5)
        line = [{"sku": product["sku"], "qty": 1}]
        before = await stack.checkout(line)
        os.kill(pid, signal.SIGSTOP)
        try:
            during = [
                await asyncio.wait_for(stack.checkout(line), timeout=BOUND_S) for _ in range(3)
            ]
            ready = await asyncio.wait_for(stack.orders.get("/health/ready"), timeout=BOUND_S)
        finally:
            os.kill(pid, signal.SIGCONT)
        settled = [await stack.wait_settled(r.json()["id"], timeout=60) for r in during]
        stock = await stack.stock(product)

    assert before.status_code == 201, before.text
    for response in during:
        assert response.status_code == 202, response.text
        assert response.headers["location"] == f"/api/v1/orders/{response.json()['id']}"
    assert ready.status_code == 503
    assert ready.json()["checks"]["redis"] == "down: BreakerOpen"
    assert [order["status"] for order in settled] == ["CONFIRMED"] * 3
    assert stock == {"on_hand": 1, "reserved": 0, "available": 1}
