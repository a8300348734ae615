"""Pending OTP codes, resend cooldowns and Telegram link tokens in Redis.

Keys (all expiring)::

    auth:otp:code:<phone>      hash {d: digest, a: attempts}   TTL = code TTL
    auth:otp:cooldown:<phone>  "1"                             TTL = resend cooldown
    auth:tg:link:<token>       phone                           TTL = code TTL (one use)
    auth:tg:temp:<phone>       chat id                         TTL = code TTL (TEMP link)

Only digests of codes are stored. An attempt is counted *before* the comparison, in one
script, so concurrent guesses can never test more codes than the attempt limit.
"""

import enum
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis

__all__ = ["Attempt", "AttemptOutcome", "OtpStore"]

_CODE = "auth:otp:code:"
_COOLDOWN = "auth:otp:cooldown:"
_LINK = "auth:tg:link:"
_TEMP = "auth:tg:temp:"

# KEYS[1] = code key; ARGV[1] = max attempts.
# -> {0} no code, {1} locked, {2, digest, attempts_after_this_one}
_TAKE_ATTEMPT = """
local digest = redis.call('HGET', KEYS[1], 'd')
if not digest then return {0} end
local attempts = tonumber(redis.call('HGET', KEYS[1], 'a') or '0')
if attempts >= tonumber(ARGV[1]) then return {1} end
attempts = redis.call('HINCRBY', KEYS[1], 'a', 1)
return {2, digest, attempts}
"""

# KEYS[1] = code key; ARGV[1] = the digest that matched. Deletes only that code.
_CONSUME = """
if redis.call('HGET', KEYS[1], 'd') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""


class AttemptOutcome(enum.Enum):
    """What a verification attempt found in Redis."""

    NO_CODE = 0
    LOCKED = 1
    COUNTED = 2


@dataclass(frozen=True)
class Attempt:
    """One counted attempt: the stored digest and how many attempts were made so far."""

    outcome: AttemptOutcome
    digest: str = ""
    attempts: int = 0


class OtpStore:
    """Redis operations on codes, cooldowns, link tokens and TEMP chat links."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._take_attempt = redis.register_script(_TAKE_ATTEMPT)
        self._consume = redis.register_script(_CONSUME)

    async def cooldown_left(self, phone: str) -> int:
        """Seconds before another code may be sent to ``phone`` (0 when it may)."""
        ttl = int(await self._redis.ttl(_COOLDOWN + phone))
        return max(ttl, 0)

    async def start_cooldown(self, phone: str, seconds: int) -> int:
        """Start the cooldown; returns 0, or the seconds left when another request won."""
        if await self._redis.set(_COOLDOWN + phone, "1", nx=True, ex=seconds):
            return 0
        return max(await self.cooldown_left(phone), 1)

    async def clear_cooldown(self, phone: str) -> None:
        """Forget a cooldown (the send it belonged to was refused after all)."""
        await self._redis.delete(_COOLDOWN + phone)

    async def put_code(self, phone: str, digest: str, ttl_s: int) -> None:
        """Store a new pending code for ``phone``, replacing any other and its attempts."""
        key = _CODE + phone
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(key, mapping={"d": digest, "a": 0})
            pipe.expire(key, ttl_s)
            await pipe.execute()

    async def take_attempt(self, phone: str, max_attempts: int) -> Attempt:
        """Count one attempt against the pending code and return its digest."""
        result = cast(
            list[Any], await self._take_attempt(keys=[_CODE + phone], args=[max_attempts])
        )
        outcome = AttemptOutcome(int(result[0]))
        if outcome is not AttemptOutcome.COUNTED:
            return Attempt(outcome)
        return Attempt(outcome, digest=str(result[1]), attempts=int(result[2]))

    async def consume(self, phone: str, digest: str) -> bool:
        """Delete the code that matched; False when another request used it first."""
        return bool(await self._consume(keys=[_CODE + phone], args=[digest]))

    async def code_exists(self, phone: str) -> bool:
        """Whether a code is pending for ``phone``."""
        return bool(await self._redis.exists(_CODE + phone))

    async def put_link_token(self, token: str, phone: str, ttl_s: int) -> None:
        """Remember which phone a Telegram deep-link token was issued for."""
        await self._redis.set(_LINK + token, phone, ex=ttl_s)

    async def take_link_token(self, token: str) -> str | None:
        """The phone of a link token, which is gone afterwards (GETDEL: one use)."""
        phone = await self._redis.getdel(_LINK + token)
        return None if phone is None else str(phone)

    async def put_temp_chat(self, phone: str, chat_id: int, ttl_s: int) -> None:
        """TEMP link: the chat that pressed Start for ``phone`` (until the code expires)."""
        await self._redis.set(_TEMP + phone, str(chat_id), ex=ttl_s)

    async def temp_chat(self, phone: str) -> int | None:
        """The TEMP chat of ``phone``, if any."""
        value = await self._redis.get(_TEMP + phone)
        return None if value is None else int(value)

    async def drop_temp_chat(self, phone: str) -> None:
        """Forget the TEMP link (it became FINAL, or was refused)."""
        await self._redis.delete(_TEMP + phone)
