"""Who is online, across replicas, without trusting any replica to clean up after itself.

Every socket is a member ``<user_id>|<connection_id>`` of one sorted set scored by the
time it stops counting (now + TTL). Each replica refreshes the scores of its live
sockets in batches, and removes closed ones in batches too (many sockets close at once
when clients reconnect en masse); a crashed replica's members simply expire. A user is online
while any of their members is unexpired, so several tabs and replicas just work.
"""

import time
from collections.abc import Iterable
from itertools import islice

from redis.asyncio import Redis

__all__ = ["PRESENCE_KEY", "Presence"]

PRESENCE_KEY = "presence:connections"
_MAX_PENDING_REMOVALS = 100_000


class Presence:
    """The online set in Redis."""

    def __init__(self, redis: Redis, *, ttl_s: float, key: str = PRESENCE_KEY) -> None:
        self._redis = redis
        self._ttl_s = ttl_s
        self._key = key
        self._closed: set[str] = set()

    @staticmethod
    def _member(user_id: str, connection_id: str) -> str:
        return f"{user_id}|{connection_id}"

    async def touch(self, user_id: str, connection_id: str) -> None:
        """Mark a connection alive for another TTL."""
        await self._redis.zadd(
            self._key, {self._member(user_id, connection_id): time.time() + self._ttl_s}
        )

    async def touch_many(self, connections: Iterable[tuple[str, str]], chunk: int = 1000) -> None:
        """Mark many ``(user_id, connection_id)`` alive for another TTL, in few commands."""
        until = time.time() + self._ttl_s
        members = iter(connections)
        while batch := list(islice(members, chunk)):
            await self._redis.zadd(self._key, {self._member(u, c): until for u, c in batch})

    def remove_later(self, user_id: str, connection_id: str) -> None:
        """Queue a closed connection for the next :meth:`flush_removals`.

        So that 10,000 sockets closing at once do not each wait for a pooled Redis
        connection for a ``ZREM`` of their own. While Redis is unreachable the queue
        stops growing at ``_MAX_PENDING_REMOVALS``: the rest expire on their own.
        """
        if len(self._closed) < _MAX_PENDING_REMOVALS:
            self._closed.add(self._member(user_id, connection_id))

    async def flush_removals(self, chunk: int = 1000) -> int:
        """Remove the queued connections (a few ``ZREM`` s); how many were removed.

        On a Redis error the rest stay queued for the next flush (and expire anyway).
        """
        removed = 0
        while self._closed:
            batch = list(islice(self._closed, chunk))
            await self._redis.zrem(self._key, *batch)
            self._closed.difference_update(batch)
            removed += len(batch)
        return removed

    async def _members_of(self, user_id: str) -> list[str]:
        prefix = f"{user_id}|"
        found: list[str] = []
        async for member in self._redis.zscan_iter(self._key, match=f"{prefix}*", count=1000):
            name = _text(member[0] if isinstance(member, tuple) else member)
            if name.startswith(prefix):
                found.append(name)
        return found

    async def connections_of(self, user_id: str) -> int:
        """The user's unexpired connections, on every replica."""
        now = time.time()
        count = 0
        for name in await self._members_of(user_id):
            score = await self._redis.zscore(self._key, name)
            if score is not None and float(score) > now:
                count += 1
        return count

    async def drop_user(self, user_id: str) -> int:
        """Remove every member of the user (an erased user); how many there were."""
        members = await self._members_of(user_id)
        if members:
            await self._redis.zrem(self._key, *members)
        self._closed.difference_update(members)
        return len(members)

    async def online_users(self) -> list[str]:
        """Distinct user ids with at least one unexpired connection (expired ones are pruned)."""
        now = time.time()
        await self._redis.zremrangebyscore(self._key, "-inf", now)
        members = await self._redis.zrangebyscore(self._key, now, "+inf")
        return sorted({_text(m).split("|", 1)[0] for m in members if isinstance(m, str | bytes)})


def _text(member: str | bytes) -> str:
    # Works with clients created with or without decode_responses.
    return member.decode() if isinstance(member, bytes) else member
