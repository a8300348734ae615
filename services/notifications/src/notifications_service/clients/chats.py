"""Who a user's Telegram chat is: auth's answer, cached in Redis until the link changes.

Auth owns the user -> chat link. Asking it once per notification cost both services a
request per message (issue 17), so the answer is kept in Redis for
``NOTIFICATIONS_CHAT_CACHE_TTL_S`` (every replica shares it) and dropped as soon as auth
says the link changed (``POST /internal/notifications/chats/forget``, :meth:`forget`).

One hash per user, ``notifications:chat:<user id>``:

- ``chat``: the answer, sealed with the service's field cipher and base64-encoded (the
  chat id is personal data and never sits in Redis in clear), or ``-`` for "no linked
  chat";
- ``gen``: bumped by every :meth:`forget`.

A miss remembers ``gen``, asks auth and stores the answer only if ``gen`` is still the
same (one Lua script): an answer auth gave before a link changed can never overwrite the
forgetting that followed it. The key expires with the TTL, so a forget auth could not
deliver (notifications down for longer than auth's retries) is stale for at most that
long. Unknown users are not cached; a value that no longer opens (its key was retired)
counts as a miss.
"""

import asyncio
import base64
import binascii
from collections.abc import Iterable
from typing import Any
from uuid import UUID

from redis.asyncio import Redis

from notifications_service.clients.auth import AuthClient
from storefront_kit.encryption import FieldCipher, FieldCryptoError

__all__ = ["CHAT_CACHE_CONTEXT", "ChatDirectory"]

CHAT_CACHE_CONTEXT = "notifications.chat_cache"
_NONE = "-"
_PREFIX = "notifications:chat:"

# KEYS[1] the user's hash; ARGV: expected gen ("" = none), sealed answer, ttl.
_FILL = """
local gen = redis.call('HGET', KEYS[1], 'gen')
if (gen or '') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'chat', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""

# KEYS[1] the user's hash; ARGV: ttl (the gen must outlive any lookup in flight).
_FORGET = """
redis.call('HDEL', KEYS[1], 'chat')
redis.call('HINCRBY', KEYS[1], 'gen', 1)
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""


class ChatDirectory:
    """``chat_of(user)`` through the cache, auth on a miss; ``forget(user)`` on a link change."""

    def __init__(self, *, redis: Redis, auth: AuthClient, cipher: FieldCipher, ttl_s: int) -> None:
        self._redis = redis
        self._auth = auth
        self._cipher = cipher
        self._ttl = ttl_s
        self._fill: Any = redis.register_script(_FILL)
        self._forget: Any = redis.register_script(_FORGET)

    @staticmethod
    def _key(user_id: UUID) -> str:
        return f"{_PREFIX}{user_id}"

    @staticmethod
    def _context(user_id: UUID) -> str:
        # Bound to the user: a value copied to another user's key does not open.
        return f"{CHAT_CACHE_CONTEXT}:{user_id}"

    def _seal(self, user_id: UUID, chat_id: int | None) -> str:
        if chat_id is None:
            return _NONE
        token = self._cipher.encrypt_text(str(chat_id), context=self._context(user_id))
        return base64.b64encode(token).decode()

    def _open(self, user_id: UUID, raw: str) -> tuple[bool, int | None]:
        """(found, chat id): found is False for a value that cannot be read."""
        if raw == _NONE:
            return True, None
        try:
            token = base64.b64decode(raw, validate=True)
            return True, int(self._cipher.decrypt_text(token, context=self._context(user_id)))
        except (binascii.Error, FieldCryptoError, ValueError):
            return False, None

    async def chat_of(self, user_id: UUID) -> int | None:
        """The user's chat or None; raises what :meth:`AuthClient.chat_of` raises on a miss."""
        answer = (await self.chats_of([user_id]))[user_id]
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def chats_of(self, user_ids: Iterable[UUID]) -> dict[UUID, int | Exception | None]:
        """Each user's chat, None (no linked chat), or what asking auth raised for that
        user on a miss (:class:`UnknownUser`, :class:`AuthUnavailable`…).

        A batch costs one Redis round trip (an ``HMGET`` per user in one pipeline); the
        misses ask auth and store its answers concurrently. Redis failing raises.
        """
        users = list(dict.fromkeys(user_ids))
        if len(users) == 1:
            answers = [await self._redis.hmget(self._key(users[0]), ["chat", "gen"])]
        else:
            async with self._redis.pipeline(transaction=False) as pipe:
                for user_id in users:
                    pipe.hmget(self._key(user_id), ["chat", "gen"])
                answers = await pipe.execute()
        chats: dict[UUID, int | Exception | None] = {}
        misses: list[tuple[UUID, str]] = []
        for user_id, (raw, gen) in zip(users, answers, strict=True):
            if isinstance(raw, str):  # decode_responses: always str when present
                found, cached = self._open(user_id, raw)
                if found:
                    chats[user_id] = cached
                    continue
            misses.append((user_id, gen if isinstance(gen, str) else ""))
        if misses:
            await self._ask_auth(misses, chats)
        return chats

    async def _ask_auth(
        self, misses: list[tuple[UUID, str]], chats: dict[UUID, int | Exception | None]
    ) -> None:
        """Auth's answers for the misses into ``chats``; each stored if its ``gen`` held."""
        asked = await asyncio.gather(
            *(self._auth.chat_of(user_id) for user_id, _gen in misses), return_exceptions=True
        )
        fills: list[tuple[str, str, str]] = []
        for (user_id, gen), answer in zip(misses, asked, strict=True):
            if isinstance(answer, BaseException):
                if not isinstance(answer, Exception):
                    raise answer  # cancelled
                chats[user_id] = answer  # unknown users are not cached
                continue
            chats[user_id] = answer
            fills.append((self._key(user_id), gen, self._seal(user_id, answer)))
        # Concurrently, not in a pipeline: a script in a cluster pipeline is not loaded
        # on a node that lacks it. Misses are the rare case (once per user and TTL).
        await asyncio.gather(
            *(self._fill(keys=[key], args=[gen, sealed, self._ttl]) for key, gen, sealed in fills)
        )

    async def cached(self, user_id: UUID) -> int | None:
        """The chat cached for the user, if any (auth is not asked)."""
        raw = await self._redis.hget(self._key(user_id), "chat")
        if not isinstance(raw, str):
            return None
        return self._open(user_id, raw)[1]

    async def drop(self, user_id: UUID) -> None:
        """Delete the user's key altogether (an erased user: not even its name stays)."""
        await self._redis.delete(self._key(user_id))

    async def forget(self, user_id: UUID) -> None:
        """Drop the cached answer: the next lookup asks auth (and no lookup in flight fills)."""
        await self._forget(keys=[self._key(user_id)], args=[self._ttl])
