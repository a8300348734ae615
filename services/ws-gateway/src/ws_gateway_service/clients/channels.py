"""The channel layer: Redis pub/sub, so a message reaches a user's sockets on any replica.

Each replica holds one pub/sub connection and subscribes to ``ws.user.<id>`` only while
it has a socket of that user (reference counted), plus ``admin.alerts`` while it has an
admin socket. Pub/sub is ephemeral by design (docs/design.md §5): a replica that is down
misses live pushes, never domain events.

On a Redis Cluster this stays classic pub/sub: a ``PUBLISH`` on any master reaches the
subscribers on every node (the cluster bus forwards it), so the replica's one pub/sub
connection may sit on any master. Sharded pub/sub (``SSUBSCRIBE``, Redis 7) would keep
each user's channel on its slot's master, but it needs one connection per master a
replica's users hash to and a Redis 7 server; docs/redis.md says when it is worth it.
If the node the connection sits on fails, the connection is dropped and the
subscriptions are made again on a node the client finds live.
"""

import asyncio
import contextlib
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.client import PubSub

from storefront_kit.logging import get_logger

__all__ = ["ADMIN_ALERTS", "ChannelLayer", "user_channel"]

ADMIN_ALERTS = "admin.alerts"
_NOOP_CHANNEL = "ws.gateway.noop"
logger = get_logger(__name__)

Deliver = Callable[[str, dict[str, Any]], Awaitable[None]]


def user_channel(user_id: str) -> str:
    """The pub/sub channel of one user's live pushes."""
    return f"ws.user.{user_id}"


class ChannelLayer:
    """Reference-counted subscriptions over one Redis pub/sub connection."""

    def __init__(self, redis: Redis, deliver: Deliver) -> None:
        self._redis = redis
        self._deliver = deliver
        self._pubsub: PubSub = redis.pubsub(ignore_subscribe_messages=True)
        self._refs: Counter[str] = Counter()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        """Start listening; Redis being down at start-up is retried, not fatal."""
        self._task = asyncio.create_task(self._listen(), name="channel-layer")

    async def stop(self) -> None:
        """Stop listening and close the pub/sub connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _discover(self) -> None:
        # A cluster client learns its nodes on its first command; a pub/sub connection
        # picks its node from them, so they must be known before the first SUBSCRIBE.
        if isinstance(self._redis, RedisCluster):
            await self._redis.initialize()

    async def _renew(self) -> None:
        # A cluster pub/sub connection stays with the node it picked first; after an
        # error it is replaced, so the next subscription goes to a node that answers.
        if not isinstance(self._redis, RedisCluster):
            return
        async with self._lock:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
            self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)

    async def join(self, channel: str) -> None:
        """Subscribe to ``channel`` unless this replica already is."""
        await self._discover()
        async with self._lock:
            if self._refs[channel] == 0:
                # Count the socket only once the subscription exists, so a failed
                # SUBSCRIBE is retried by the next socket instead of never again.
                await self._pubsub.subscribe(channel)
            self._refs[channel] += 1

    async def leave(self, channel: str) -> None:
        """Unsubscribe when the last local socket interested in ``channel`` is gone."""
        async with self._lock:
            self._refs[channel] -= 1
            if self._refs[channel] <= 0:
                del self._refs[channel]
                await self._pubsub.unsubscribe(channel)

    async def publish(self, channel: str, message: dict[str, Any]) -> int:
        """Publish to every replica; returns how many replicas listen (on a cluster, how
        many listen through the master that took the ``PUBLISH``: a lower bound)."""
        return int(await self._redis.publish(channel, orjson.dumps(message)))

    async def publish_many(self, messages: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Publish each ``(channel, message)``, in order, in one round trip: a pipeline
        (on a cluster one by one: redis-py refuses ``PUBLISH`` in a cluster pipeline)."""
        if isinstance(self._redis, RedisCluster):
            for channel, message in messages:
                await self.publish(channel, message)
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for channel, message in messages:
                pipe.publish(channel, orjson.dumps(message))
            await pipe.execute()

    async def _listen(self) -> None:
        backoff = 0.2
        while True:
            try:
                if not self._pubsub.subscribed:
                    await self._discover()
                    # A placeholder subscription keeps the reader busy from the start.
                    async with self._lock:
                        await self._pubsub.subscribe(_NOOP_CHANNEL, *self._refs)
                message = await self._pubsub.get_message(timeout=1.0)
                backoff = 0.2
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("channel_layer_error", error=repr(exc))
                await self._renew()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if message is None or message.get("type") != "message":
                continue
            channel = message["channel"]
            try:
                payload = orjson.loads(message["data"])
            except orjson.JSONDecodeError:
                logger.warning("channel_layer_bad_message", channel=channel)
                continue
            await self._deliver(channel, payload)
