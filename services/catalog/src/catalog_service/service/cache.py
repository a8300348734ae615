"""Search answers cached in Redis, invalidated by a catalogue version.

Key: ``<prefix>:search:<catalogue version>:<sha256 of the normalised params>``. The
listener bumps the catalogue version (``<prefix>:catalogue_version``) after every
change it applied *and made searchable*, so a request that starts after a change
never finds an answer computed before it: the invalidation rule documented in
docs/catalog.md. Entries also expire after ``cache_ttl_s``.

Stampede protection: on a miss, one request takes a short lock (``SET NX PX``) and
recomputes; the others poll for its answer until the lock's lifetime has passed and
only then compute themselves. A leader that fails (Elasticsearch down) leaves a
short-lived failure mark (``cache_failure_memory_ms``) as it releases the lock: the
waiters see it at their next poll and answer the 503 at once, and so does every request
for the same answer until the mark expires, instead of each asking Elasticsearch in turn.

Redis trouble never fails a search: every cache read and write has a short deadline
(``cache_timeout_ms``) and goes through the Redis breaker; a slow or failed one, or any
while the breaker is open, is skipped without waiting and Elasticsearch answers.

Round trips: a hit costs one (a script reads the version, then the answer or takes the
lock); a miss two (the same, then the answer stored and the lock released in one
pipeline). The script builds the answer's key from the version it read, so it touches
keys it was not given: fine on one Redis (or Sentinel). On a Redis Cluster every key of
the cache therefore shares one slot: the prefix (``CATALOG_REDIS_PREFIX``) is used as a
hash tag (``{catalog}:catalogue_version``, ``{catalog}:search:...``) unless it carries
one already; on one server the key names stay as they were (docs/redis.md).
"""

import asyncio
import hashlib
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

from prometheus_client import Counter
from redis.asyncio import Redis, RedisCluster
from redis.exceptions import RedisError

from catalog_service.errors import SearchUnavailable
from catalog_service.schemas import SearchParams, SearchResponse
from storefront_kit.breaker import Breaker, BreakerOpen
from storefront_kit.logging import get_logger

__all__ = ["SEARCH_CACHE", "SearchCache", "catalogue_version_key", "search_prefix"]

logger = get_logger(__name__)
T = TypeVar("T")

SEARCH_CACHE = Counter(
    "catalog_search_cache",
    "Search answers served from the cache (hit) or recomputed (miss).",
    ["result"],
)
# Bound once: looking a labelled child up costs about as much as counting with it.
_HIT = SEARCH_CACHE.labels(result="hit")
_MISS = SEARCH_CACHE.labels(result="miss")

# Delete the lock only if it is still ours (it may have expired and been taken by another).
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""

# With the catalogue version read first (KEYS[1]) and the answer's key built from it
# (ARGV[1] .. version .. ':' .. ARGV[2]): the answer if cached ({1, version, answer});
# else {3, version} if its computation just failed (a failure mark); else its lock, if
# free ({2, version}: compute it); else {0, version} (someone computes it: wait).
# Atomic, so no answer can be stored between the reads and the lock.
_GET_OR_LOCK = """
local version = redis.call('get', KEYS[1]) or '0'
local key = ARGV[1] .. version .. ':' .. ARGV[2]
local answer = redis.call('get', key)
if answer then return {1, version, answer} end
if redis.call('exists', key .. ':failed') == 1 then return {3, version} end
if redis.call('set', key .. ':lock', ARGV[3], 'NX', 'PX', ARGV[4]) then
    return {2, version}
end
return {0, version}
"""
_CACHED, _LEAD, _FAILED = 1, 2, 3
#: What makes the cache be skipped: Redis failing, slow, or known to be down.
_SKIPPED = (RedisError, TimeoutError, BreakerOpen)


def search_prefix(prefix: str, *, cluster: bool) -> str:
    """The prefix of the cache's keys: ``prefix``, or on a cluster ``{prefix}`` (one slot).

    A prefix that already holds a hash tag (``{...}``) is kept as it is.
    """
    if not cluster or ("{" in prefix and "}" in prefix.split("{", 1)[1]):
        return prefix
    return "{" + prefix + "}"


def catalogue_version_key(prefix: str, *, cluster: bool = False) -> str:
    """The Redis key of the catalogue version counter (``cluster``: in the cache's slot)."""
    return f"{search_prefix(prefix, cluster=cluster)}:catalogue_version"


class SearchCache:
    """Read-through cache of search answers with stampede protection."""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str,
        ttl_s: int,
        lock_ms: int,
        poll_ms: int = 10,
        enabled: bool = True,
        timeout_ms: int = 500,
        failure_memory_ms: int = 1_000,
        breaker: Breaker | None = None,
    ) -> None:
        self.redis = redis
        self.timeout_s = timeout_ms / 1000
        self.failure_memory_ms = failure_memory_ms
        self.breaker = breaker or Breaker("redis")
        self.prefix = search_prefix(prefix, cluster=isinstance(redis, RedisCluster))
        self.ttl_s = ttl_s
        self.lock_ms = lock_ms
        self.poll_s = poll_ms / 1000
        self.enabled = enabled
        self.version_key = catalogue_version_key(self.prefix)
        self._answers = f"{self.prefix}:search:"
        self._get_or_lock = redis.register_script(_GET_OR_LOCK)

    async def bump(self) -> int:
        """Invalidate every cached answer (call after a change became searchable)."""
        return int(await self.redis.incr(self.version_key))

    def key(self, params: SearchParams, version: int) -> str:
        """The cache key of ``params`` at catalogue ``version``."""
        return self._key(_digest(params), version)

    def _key(self, digest: str, version: int | str) -> str:
        # The lookup script builds the same key (ARGV[1] .. version .. ':' .. ARGV[2]).
        return f"{self._answers}{version}:{digest}"

    async def get_or_compute(
        self, params: SearchParams, compute: Callable[[], Awaitable[SearchResponse]]
    ) -> bytes:
        """The answer to ``params`` as JSON: cached, or ``compute()``'s, stored for the next.

        Answers are kept and served as the JSON they were rendered to: a hit is sent as
        it was stored, never parsed into models and rendered again (which cost a cached
        search five times what routing and the Redis round trips do).
        """
        if not self.enabled or self.breaker.is_open:
            # Known down: skipped without a round trip (the breaker's probe is the
            # first request after its reset time).
            _MISS.inc()
            return _render(await compute())
        try:
            key, cached, lock_token = await self._wait_or_lead(_digest(params))
        except _SKIPPED as exc:
            logger.warning("search_cache_unavailable", error=repr(exc))
            _MISS.inc()
            return _render(await compute())
        if cached is not None:
            _HIT.inc()
            return cached
        _MISS.inc()
        stored = False
        try:
            answer = _render(await compute())
            try:
                await self._redis(lambda: self._store(key, answer, lock_token))
                stored = True
            except _SKIPPED as exc:
                logger.warning("search_cache_store_failed", error=repr(exc))
            return answer
        except SearchUnavailable as exc:
            # A refusal by the open Elasticsearch breaker cost nothing: not remembered,
            # so the first search after the breaker closes is answered.
            if lock_token is not None and not isinstance(exc.__cause__, BreakerOpen):
                stored = await self._remember_failure(key, lock_token)
            raise
        finally:
            if lock_token is not None and not stored:
                await self._release(key, lock_token)

    async def _redis(self, command: Callable[[], Awaitable[T]]) -> T:
        """One cache round trip: through the breaker, within the cache's deadline."""
        return await self.breaker.call(command, timeout_s=self.timeout_s)

    async def _store(self, key: str, answer: bytes, lock_token: str | None) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(key, answer, ex=self.ttl_s)
            if lock_token is not None:
                pipe.eval(_RELEASE, 1, f"{key}:lock", lock_token)
            await pipe.execute()

    async def _remember_failure(self, key: str, lock_token: str) -> bool:
        """Mark the answer as failing for a moment and release the lock, in one trip;
        True when done (the waiters then stop at their next poll)."""
        if self.failure_memory_ms <= 0 or self.breaker.is_open:
            return False

        async def mark() -> None:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.set(f"{key}:failed", 1, px=self.failure_memory_ms)
                pipe.eval(_RELEASE, 1, f"{key}:lock", lock_token)
                await pipe.execute()

        try:
            await self._redis(mark)
        except _SKIPPED as exc:
            logger.warning("search_cache_mark_failed", error=repr(exc))
            return False
        return True

    async def _wait_or_lead(self, digest: str) -> tuple[str, bytes | None, str | None]:
        """The answer's key at the current catalogue version, and: the answer when
        cached; else the lock token when this request must compute it (``None`` when
        the leader took too long)."""
        token = uuid.uuid4().hex
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.lock_ms / 1000
        while True:
            found = await self._redis(
                lambda: self._get_or_lock(
                    keys=[self.version_key], args=[self._answers, digest, token, self.lock_ms]
                )
            )
            key = self._key(digest, _text(found[1]))
            if found[0] == _FAILED:
                # The answer's computation failed a moment ago (here or in another replica).
                raise SearchUnavailable()
            if found[0] == _CACHED:
                raw = found[2]
                return key, (raw.encode() if isinstance(raw, str) else bytes(raw)), None
            if found[0] == _LEAD:
                return key, None, token
            if loop.time() >= deadline:
                return key, None, None  # the leader is too slow: answer this one ourselves
            await asyncio.sleep(self.poll_s)

    async def _release(self, key: str, token: str) -> None:
        if self.breaker.is_open:
            return  # the lock expires on its own
        try:
            await self._redis(lambda: self.redis.eval(_RELEASE, 1, f"{key}:lock", token))
        except _SKIPPED as exc:
            logger.warning("search_cache_unlock_failed", error=repr(exc))


def _digest(params: SearchParams) -> str:
    return hashlib.sha256(params.model_dump_json().encode()).hexdigest()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _render(answer: SearchResponse) -> bytes:
    # What FastAPI would send for the model (aliases included), rendered once.
    return answer.model_dump_json(by_alias=True).encode()
