"""Keep the cyclic garbage collector off the sockets' long-lived objects.

A socket lives for minutes or hours, and with it a few hundred objects (its ASGI
scope, protocol, transport, session, queue, task). CPython's full collection walks every
tracked object, and it runs each time the objects that survived into the oldest
generation grew by a quarter: while a process fills up to 10,000 sockets, that was a
full collection every few seconds taking 1 to 2.5 s of CPU with the event loop stopped
(docs/benchmarks.md, issue 20), and an alert fanned out in that moment waited for it.

Every ``freeze_every_s`` this worker moves what is alive into CPython's permanent
generation (``gc.freeze()``: a list splice, no walk), so a collection walks only what
was made since. Frozen objects are still freed by reference counting; only a reference
cycle among them is not collected while they stay frozen. A closed socket leaves a few
such cycles behind, so every ``thaw_every_s`` the worker hands everything back to the
collector (``gc.unfreeze()``) and collects once (``gc.collect()``), which frees them:
one long pass per thaw interval, at a known time, instead of one per quarter of growth.
"""

import asyncio
import contextlib
import gc
import time

from prometheus_client import Counter

from storefront_kit.logging import get_logger

__all__ = ["run_gc_freezer"]

logger = get_logger(__name__)

FREEZES = Counter("ws_gateway_gc_freezes_total", "Times the live objects were frozen.")
THAWS = Counter(
    "ws_gateway_gc_thaws_total", "Full collections over the frozen objects (one per thaw)."
)


async def run_gc_freezer(
    *, freeze_every_s: float, thaw_every_s: float, stop: asyncio.Event
) -> None:
    """Freeze every ``freeze_every_s``; every ``thaw_every_s`` (0: never) first collect
    everything once, frozen objects included; until ``stop``."""
    frozen_for = 0.0
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=freeze_every_s)
            return
        frozen_for += freeze_every_s
        if thaw_every_s and frozen_for >= thaw_every_s:
            frozen_for = 0.0
            started = time.process_time()
            gc.unfreeze()
            collected = gc.collect()  # the cycles closed sockets left among frozen objects
            THAWS.inc()
            logger.info(
                "gc_thawed",
                collected=collected,
                cpu_ms=round((time.process_time() - started) * 1000, 1),
            )
        gc.freeze()
        FREEZES.inc()
