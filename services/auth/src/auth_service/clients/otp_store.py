"""Pending OTP codes, resend cooldowns and Telegram link tokens in Redis.

Keys (all expiring)::

    auth:otp:code:<phone key>      hash {d: digest, a: attempts}   TTL = code TTL
    auth:otp:cooldown:<phone key>  "1"                             TTL = resend cooldown
    auth:tg:link:<token>           hash {p: sealed phone, a: failed attempts, c: chat id}
                                                                   TTL = code TTL (one use)
    auth:tg:pending:<chat>         link token the chat pressed Start on   TTL = the link's
    auth:tg:temp:<phone key>       chat id                         TTL = code TTL (TEMP link)

No phone number is written to Redis: the store is given how a phone becomes a key
(a keyed hash) and how it is sealed into a value and opened again (encryption), see
``auth_service.fields``.

Only digests of codes are stored. An attempt is counted *before* the comparison, in one
script, so concurrent guesses can never test more codes than the attempt limit.

A link token is bound to the first chat that presses Start on it; only that chat's
contact can spend it, and every refused attempt (another chat's Start, a foreign or
mismatching contact, a typed number) is counted against it until it is burned. Each
script touches one key, so Redis Cluster needs no hash tags for them.
"""

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis

__all__ = ["Attempt", "AttemptOutcome", "BindOutcome", "LinkBinding", "OtpStore", "PendingLink"]

_CODE = "auth:otp:code:"
_COOLDOWN = "auth:otp:cooldown:"
_LINK = "auth:tg:link:"
_TEMP = "auth:tg:temp:"
_PENDING = "auth:tg:pending:"

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


# KEYS[1] = link key; ARGV[1] = chat id, ARGV[2] = max failed attempts.
# -> {0} no such link, {1, phone, ttl_ms} bound to this chat, {2, left} bound to another
# chat (counted), {3} bound to another chat and burned by this attempt.
_BIND_LINK = """
local phone = redis.call('HGET', KEYS[1], 'p')
if not phone then return {0} end
local chat = redis.call('HGET', KEYS[1], 'c')
if (not chat) or chat == ARGV[1] then
  redis.call('HSET', KEYS[1], 'c', ARGV[1])
  return {1, phone, redis.call('PTTL', KEYS[1])}
end
local failed = redis.call('HINCRBY', KEYS[1], 'a', 1)
if failed >= tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[1])
  return {3}
end
return {2, tonumber(ARGV[2]) - failed}
"""

# KEYS[1] = link key; ARGV[1] = max failed attempts. -> attempts left (0: burned, -1: gone)
_FAIL_LINK = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local failed = redis.call('HINCRBY', KEYS[1], 'a', 1)
if failed >= tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1])
  return 0
end
return tonumber(ARGV[1]) - failed
"""

# KEYS[1] = link key; ARGV[1] = chat id. Spends the link only for the chat it is bound to.
_SPEND_LINK = """
if redis.call('HGET', KEYS[1], 'c') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""


class BindOutcome(enum.Enum):
    """What pressing Start on a link token found."""

    NO_LINK = 0
    BOUND = 1
    OTHER_CHAT = 2
    BURNED = 3


@dataclass(frozen=True)
class LinkBinding:
    """The outcome of a Start press: the phone and TTL of the link when it is this chat's."""

    outcome: BindOutcome
    phone: str = ""
    ttl_ms: int = 0


@dataclass(frozen=True)
class PendingLink:
    """The link a chat pressed Start on: its token, phone, and failed attempts so far."""

    token: str
    phone: str
    failed: int


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

    def __init__(
        self,
        redis: Redis,
        *,
        phone_key: Callable[[str], str],
        seal_phone: Callable[[str], str],
        unseal_phone: Callable[[str], str],
    ) -> None:
        self._redis = redis
        self._phone_key = phone_key
        self._seal = seal_phone
        self._unseal = unseal_phone
        self._take_attempt = redis.register_script(_TAKE_ATTEMPT)
        self._consume = redis.register_script(_CONSUME)
        self._bind_link = redis.register_script(_BIND_LINK)
        self._fail_link = redis.register_script(_FAIL_LINK)
        self._spend_link = redis.register_script(_SPEND_LINK)

    async def forget_phone(self, phone: str) -> None:
        """Drop every key named after ``phone``: its code, cooldown and TEMP chat (erasure)."""
        key = self._phone_key(phone)
        await self._redis.delete(_CODE + key, _COOLDOWN + key, _TEMP + key)

    async def cooldown_left(self, phone: str) -> int:
        """Seconds before another code may be sent to ``phone`` (0 when it may)."""
        ttl = int(await self._redis.ttl(_COOLDOWN + self._phone_key(phone)))
        return max(ttl, 0)

    async def start_cooldown(self, phone: str, seconds: int) -> int:
        """Start the cooldown; returns 0, or the seconds left when another request won."""
        if await self._redis.set(_COOLDOWN + self._phone_key(phone), "1", nx=True, ex=seconds):
            return 0
        return max(await self.cooldown_left(phone), 1)

    async def clear_cooldown(self, phone: str) -> None:
        """Forget a cooldown (the send it belonged to was refused after all)."""
        await self._redis.delete(_COOLDOWN + self._phone_key(phone))

    async def put_code(self, phone: str, digest: str, ttl_s: int) -> None:
        """Store a new pending code for ``phone``, replacing any other and its attempts."""
        key = _CODE + self._phone_key(phone)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(key, mapping={"d": digest, "a": 0})
            pipe.expire(key, ttl_s)
            await pipe.execute()

    async def take_attempt(self, phone: str, max_attempts: int) -> Attempt:
        """Count one attempt against the pending code and return its digest."""
        key = _CODE + self._phone_key(phone)
        result = cast(list[Any], await self._take_attempt(keys=[key], args=[max_attempts]))
        outcome = AttemptOutcome(int(result[0]))
        if outcome is not AttemptOutcome.COUNTED:
            return Attempt(outcome)
        return Attempt(outcome, digest=str(result[1]), attempts=int(result[2]))

    async def consume(self, phone: str, digest: str) -> bool:
        """Delete the code that matched; False when another request used it first."""
        return bool(await self._consume(keys=[_CODE + self._phone_key(phone)], args=[digest]))

    async def code_exists(self, phone: str) -> bool:
        """Whether a code is pending for ``phone``."""
        return bool(await self._redis.exists(_CODE + self._phone_key(phone)))

    async def put_link_token(self, token: str, phone: str, ttl_s: int) -> None:
        """Remember which phone a Telegram deep-link token was issued for (no chat yet)."""
        key = _LINK + token
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"p": self._seal(phone), "a": 0})
            pipe.expire(key, ttl_s)
            await pipe.execute()

    async def bind_link(self, token: str, chat_id: int, max_attempts: int) -> LinkBinding:
        """Start pressed on ``token`` in ``chat_id``: bind the link to the first such chat.

        The chat then points at the link (``auth:tg:pending:<chat>``) until it expires, so
        its contact can be matched with it. Another chat's press counts as a failed attempt.
        """
        result = cast(
            list[Any],
            await self._bind_link(keys=[_LINK + token], args=[chat_id, max_attempts]),
        )
        outcome = BindOutcome(int(result[0]))
        if outcome is not BindOutcome.BOUND:
            return LinkBinding(outcome)
        ttl_ms = max(int(result[2]), 1)
        await self._redis.set(_PENDING + str(chat_id), token, px=ttl_ms)
        return LinkBinding(outcome, phone=self._unseal(str(result[1])), ttl_ms=ttl_ms)

    async def pending_link(self, chat_id: int) -> PendingLink | None:
        """The live link ``chat_id`` pressed Start on last (None: none, or it expired)."""
        token = await self._redis.get(_PENDING + str(chat_id))
        if token is None:
            return None
        fields = await self._redis.hgetall(_LINK + str(token))
        if not fields or fields.get("c") != str(chat_id):
            return None
        phone = self._unseal(str(fields["p"]))
        return PendingLink(token=str(token), phone=phone, failed=int(fields["a"]))

    async def fail_link(self, token: str, max_attempts: int) -> int:
        """Count a refused attempt against the link; attempts left (0: it is burned now)."""
        left = int(await self._fail_link(keys=[_LINK + token], args=[max_attempts]))
        return max(left, 0)

    async def spend_link(self, token: str, chat_id: int) -> bool:
        """Use the link up for the chat it is bound to; False when it is gone already."""
        spent = bool(await self._spend_link(keys=[_LINK + token], args=[chat_id]))
        await self.drop_pending(chat_id)
        return spent

    async def drop_pending(self, chat_id: int) -> None:
        """Forget which link the chat pressed Start on."""
        await self._redis.delete(_PENDING + str(chat_id))

    async def put_temp_chat(self, phone: str, chat_id: int, ttl_s: int) -> None:
        """TEMP link: the chat that pressed Start for ``phone`` (until the code expires)."""
        await self._redis.set(_TEMP + self._phone_key(phone), str(chat_id), ex=ttl_s)

    async def temp_chat(self, phone: str) -> int | None:
        """The TEMP chat of ``phone``, if any."""
        value = await self._redis.get(_TEMP + self._phone_key(phone))
        return None if value is None else int(value)

    async def drop_temp_chat(self, phone: str) -> None:
        """Forget the TEMP link (it became FINAL, or was refused)."""
        await self._redis.delete(_TEMP + self._phone_key(phone))
