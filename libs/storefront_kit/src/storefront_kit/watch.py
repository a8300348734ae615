"""Know a dependency is down before a request has to find out: a background ping.

A :class:`DependencyWatch` pings one dependency (Redis ``PING``, Elasticsearch cluster health)
every ``interval_s`` with a short deadline (``timeout_s``). After ``misses`` pings in a
row failed or came too late it trips the dependency's :class:`~storefront_kit.breaker.Breaker`
open: from that moment every call is refused at once and the calls in flight are
released (:meth:`~storefront_kit.breaker.Breaker.call`). The first ping that answers
again closes the breaker: the watch is the breaker's half-open probe, so no request ever
waits out a deadline to find out whether the dependency is back.

A freeze is known at most ``interval_s * misses + timeout_s`` after it began
(:meth:`DependencyWatch.detection_s`), whatever the traffic; without a watch the
breaker needs ``failure_threshold`` calls to fail, each after its whole timeout.

Run it for the lifetime of the service (its lifespan)::

    watch = DependencyWatch(breaker, redis_ping(redis), interval_s=0.25, timeout_s=0.15,
                            misses=2)
    watch.start()
    try:
        yield
    finally:
        await watch.stop()

The library reads no configuration: the service passes its settings in.
"""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from storefront_kit.breaker import Breaker
from storefront_kit.logging import get_logger

__all__ = ["DependencyWatch", "Ping", "elasticsearch_ping", "redis_ping"]

logger = get_logger(__name__)

#: One ping: it answers (anything but ``False``), or it raises / returns ``False``.
Ping = Callable[[], Awaitable[object]]


def redis_ping(redis: Any) -> Ping:
    """``PING`` on an asyncio Redis client (every master of a cluster client)."""
    from storefront_kit.redis import ping as ping_redis

    async def ping() -> object:
        return await ping_redis(redis)

    return ping


def elasticsearch_ping(client: Any) -> Ping:
    """Cluster health on an ``AsyncElasticsearch`` client, not retried (the watch's
    deadline bounds it): answered when the cluster is at least yellow, as readiness
    counts it (``HEAD /`` may be refused on a locked-down cluster)."""

    async def ping() -> object:
        health = await client.options(max_retries=0).cluster.health()
        return health["status"] in ("green", "yellow")

    return ping


class DependencyWatch:
    """Pings one dependency in the background and opens (closes) its breaker when it
    stops (starts again) answering."""

    def __init__(
        self,
        breaker: Breaker,
        ping: Ping,
        *,
        interval_s: float,
        timeout_s: float,
        misses: int,
    ) -> None:
        if interval_s <= 0 or timeout_s <= 0 or misses < 1:
            raise ValueError("interval_s and timeout_s must be > 0 and misses ≥ 1")
        self.breaker = breaker
        self.ping = ping
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.misses = misses
        self._missed = 0
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    @property
    def name(self) -> str:
        """The dependency's name (its breaker's)."""
        return self.breaker.name

    @property
    def consecutive_misses(self) -> int:
        """Pings in a row that failed or came too late (0 after one that answered)."""
        return self._missed

    def detection_s(self) -> float:
        """Longest time from the dependency freezing to its breaker being open."""
        return self.interval_s * self.misses + self.timeout_s

    async def check(self) -> bool:
        """One ping, its outcome applied to the breaker; True when it answered in time."""
        try:
            async with asyncio.timeout(self.timeout_s):
                answered = await self.ping() is not False
        except Exception as exc:
            answered = False
            if self._missed == 0:
                logger.info("dependency_ping_missed", dependency=self.name, error=repr(exc))
        if answered:
            if self._missed >= self.misses:
                logger.info("dependency_back", dependency=self.name)
            self._missed = 0
            self.breaker.ping_succeeded()
        else:
            self._missed += 1
            if self._missed >= self.misses and not self.breaker.tripped:
                logger.warning("dependency_down", dependency=self.name, misses=self._missed)
                self.breaker.trip()
        return answered

    async def run(self) -> None:
        """Ping every ``interval_s`` (start to start) until :meth:`stop`."""
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            started = loop.time()
            await self.check()
            pause = max(0.0, started + self.interval_s - loop.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=pause)

    def start(self) -> "asyncio.Task[None]":
        """Start pinging in a background task (the breaker now waits for the watch to
        close it, instead of letting a call probe)."""
        if self._task is not None and not self._task.done():
            return self._task
        self._stop = asyncio.Event()
        self.breaker.attach_watch(self.interval_s)
        self._task = asyncio.create_task(self.run(), name=f"watch-{self.name}")
        return self._task

    async def stop(self) -> None:
        """Stop pinging; the breaker goes back to half-open probes by calls."""
        self._stop.set()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.breaker.detach_watch()
