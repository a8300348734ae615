"""The heartbeat: one task per replica pings its sockets and keeps their presence fresh."""

import asyncio
import contextlib
from datetime import UTC, datetime

import orjson
from redis.exceptions import RedisError

from storefront_kit.logging import get_logger
from ws_gateway_service.service.hub import Hub
from ws_gateway_service.service.presence import Presence

__all__ = ["heartbeat_slots", "run_heartbeat"]

logger = get_logger(__name__)


def heartbeat_slots(interval_s: float, tick_s: float = 0.1) -> int:
    """How many ticks of about ``tick_s`` one heartbeat interval is spread over."""
    return max(1, round(interval_s / tick_s))


async def run_heartbeat(
    hub: Hub,
    presence: Presence,
    *,
    interval_s: float,
    stop: asyncio.Event,
) -> None:
    """Each socket, once per ``interval_s``: a ping message, and its presence refreshed
    in Redis (batched: one ``ZADD`` per tick for the sockets due in it). Every tick also
    removes the sockets closed since the last one (one ``ZREM``).

    One task per replica, not one per socket: with 10,000 sockets, a heartbeat task and
    a ``ZADD`` each had the sockets queue on the Redis pool for their refresh and
    delayed every fan-out by seconds. The sockets are spread over the interval's ticks
    (by connection id, ``hub.heartbeat_slots`` of them; the hub keeps each tick's
    sockets) so that no tick sends 10,000 pings at once in front of an alert.
    """
    slots = hub.heartbeat_slots
    tick = 0
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s / slots)
            with contextlib.suppress(RedisError):
                await presence.flush_removals()  # shutting down: leave no ghost behind
            return
        slot, tick = tick % slots, tick + 1
        try:
            await presence.flush_removals()
        except RedisError as exc:
            logger.warning("presence_removal_failed", error=repr(exc))
        due = hub.due(slot)
        if not due:
            continue
        ping = orjson.dumps({"type": "ping", "at": datetime.now(UTC).isoformat()}).decode()
        for connection in due:
            connection.offer(ping)
        try:
            await presence.touch_many((c.user_id, c.id) for c in due)
        except RedisError as exc:
            # Advisory: a missed refresh only shortens the time these sockets count online.
            logger.warning("presence_refresh_failed", error=repr(exc), sockets=len(due))
