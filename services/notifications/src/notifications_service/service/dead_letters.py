"""Events the consumer gave up on, read back from the dead-letter stream for admins."""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from redis.asyncio import Redis, RedisCluster
from redis.exceptions import ResponseError, WatchError

from notifications_service.errors import DeadLetterNotFound, InvalidRequest, ServiceUnavailable
from storefront_kit.audit import AUDIT_STREAM, AuditContext, audit_event

__all__ = ["list_dead_letters", "parse_cursor", "replay_dead_letter"]

#: The fields of the original stream entry a dead letter carries (the rest say why).
_EVENT_FIELDS = ("id", "type", "envelope")
_REPLAY_ATTEMPTS = 10
#: Trim ``audit.events`` like the outbox relays do (approximately, by length).
_AUDIT_STREAM_MAXLEN = 1_000_000

_U64_MAX = 2**64 - 1


def parse_cursor(before: str) -> str:
    """A ``before`` cursor as Redis accepts it after ``(``: ``ms-seq``, each ≤ 2^64-1, not 0-0."""
    ms_text, _, seq_text = before.partition("-")
    ms, seq = int(ms_text), int(seq_text)
    if ms > _U64_MAX or seq > _U64_MAX:
        raise InvalidRequest(
            "before is not a stream id: each part may be at most 18446744073709551615."
        )
    if ms == seq == 0:
        # Nothing is older than 0-0, and Redis refuses the exclusive range "(0-0".
        raise InvalidRequest("before must be a stream id greater than 0-0.")
    return f"{ms}-{seq}"


def _item(entry_id: str, fields: dict[str, str]) -> dict[str, Any]:
    envelope: Any = None
    if "envelope" in fields:
        try:
            envelope = orjson.loads(fields["envelope"])
        except orjson.JSONDecodeError:
            envelope = None
    millis = int(entry_id.split("-", 1)[0])
    return {
        "entry_id": entry_id,
        "dead_lettered_at": datetime.fromtimestamp(millis / 1000, tz=UTC),
        "event_id": fields.get("id"),
        "event_type": fields.get("type"),
        "reason": fields.get("dead_reason", ""),
        "original_entry_id": fields.get("entry_id"),
        "envelope": envelope,
        "raw": None if envelope is not None else fields.get("envelope"),
    }


async def list_dead_letters(
    redis: Redis, *, stream: str, group: str, limit: int, before: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first: this group's dead letters older than ``before``; and the next cursor."""
    items: list[dict[str, Any]] = []
    upper = f"({parse_cursor(before)}" if before else "+"
    while len(items) < limit:
        try:
            chunk: list[Any] = await redis.xrevrange(stream, max=upper, min="-", count=limit) or []
        except ResponseError as exc:
            # Redis refusing the range is the cursor's fault, never a 500.
            raise InvalidRequest("before is not a stream id Redis accepts.") from exc
        if not chunk:
            return items, None
        for entry_id, fields in chunk:
            if fields.get("group") == group:
                items.append(_item(entry_id, fields))
                if len(items) == limit:
                    return items, entry_id
        upper = f"({chunk[-1][0]}"
        if len(chunk) < limit:
            return items, None
    return items, None


async def replay_dead_letter(
    redis: Redis,
    *,
    stream: str,
    dead_stream: str,
    group: str,
    entry_id: str,
    audit: AuditContext,
) -> dict[str, Any]:
    """Put a dead letter back on ``stream`` for the consumer group, audited; what moved.

    The replay is a Redis change, not a database one, so its audit entry is written in
    the same Redis transaction (``MULTI``/``EXEC``): the event goes back on ``stream``,
    leaves the dead-letter stream, and its ``audit.recorded`` event goes on
    ``audit.events``, all or none. ``WATCH`` on the dead-letter stream makes two
    replays of one entry at the same moment replay it once (the other gets 404).
    """
    parse_cursor(entry_id)
    if isinstance(redis, RedisCluster):
        replay = _Replay(stream, dead_stream, group, entry_id, audit)
        return await _replay_on_cluster(redis, replay)
    for _ in range(_REPLAY_ATTEMPTS):
        async with redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(dead_stream)
                found: Any = await pipe.xrange(dead_stream, min=entry_id, max=entry_id)
                fields = _replayable(found, entry_id, group)
                item = _item(entry_id, fields)
                entry = _replay_audit_entry(audit, entry_id, item, stream, dead_stream, group)
                pipe.multi()  # type: ignore[no-untyped-call]
                pipe.xadd(stream, _event_fields(fields))
                pipe.xdel(dead_stream, entry_id)
                pipe.xadd(AUDIT_STREAM, _audit_fields(entry), **_AUDIT_TRIM)
                new_id, _deleted, _audited = await pipe.execute()
            except WatchError:
                continue  # another dead letter arrived or left meanwhile: look again
        return {**item, "replayed_entry_id": new_id, "audit_entry_id": str(entry.id)}
    raise ServiceUnavailable("The dead-letter stream kept changing; try again.")


#: How the audit stream is trimmed when a replay adds to it.
_AUDIT_TRIM: dict[str, Any] = {"maxlen": _AUDIT_STREAM_MAXLEN, "approximate": True}

#: How long a replay on a cluster holds its entry (longer than three writes can take).
_CLAIM_MS = 30_000


@dataclass(frozen=True)
class _Replay:
    """What :func:`replay_dead_letter` was asked to replay, and for whom."""

    stream: str
    dead_stream: str
    group: str
    entry_id: str
    audit: AuditContext


async def _replay_on_cluster(redis: Redis, replay: _Replay) -> dict[str, Any]:
    """The replay on a Redis Cluster, where the three streams sit in three slots.

    No transaction spans slots, so the entry is claimed first (``SET NX``, a key in the
    dead-letter stream's slot): of two replays at the same moment one gets 404, as with
    ``WATCH``. Then the event goes back on ``stream`` with its audit event, and only then
    does the dead letter leave: a replica dying in between leaves the dead letter in
    place (replayable again once the claim expires), so an event is replayed at least
    once, never lost; its consumers drop a second delivery by event id.
    """
    stream, dead_stream, entry_id = replay.stream, replay.dead_stream, replay.entry_id
    claim = f"{{{dead_stream}}}:replaying:{entry_id}"
    token = uuid.uuid4().hex
    if not await redis.set(claim, token, nx=True, px=_CLAIM_MS):
        raise DeadLetterNotFound(f"Dead letter {entry_id} is being replayed already.")
    try:
        found: Any = await redis.xrange(dead_stream, min=entry_id, max=entry_id)
        fields = _replayable(found, entry_id, replay.group)
        item = _item(entry_id, fields)
        entry = _replay_audit_entry(replay.audit, entry_id, item, stream, dead_stream, replay.group)
        new_id = await redis.xadd(stream, _event_fields(fields))
        await redis.xadd(AUDIT_STREAM, _audit_fields(entry), **_AUDIT_TRIM)
        await redis.xdel(dead_stream, entry_id)
    finally:
        if await redis.get(claim) == token:
            await redis.delete(claim)
    return {**item, "replayed_entry_id": new_id, "audit_entry_id": str(entry.id)}


def _replayable(found: Any, entry_id: str, group: str) -> dict[str, str]:
    """The fields of the dead letter ``XRANGE`` found, if it is this group's and holds an
    event (else 404)."""
    if not found or found[0][1].get("group") != group:
        raise DeadLetterNotFound(f"No dead letter {entry_id} of this service.")
    fields: dict[str, str] = found[0][1]
    if "envelope" not in fields:
        raise DeadLetterNotFound(f"Dead letter {entry_id} holds no event to replay.")
    return fields


def _event_fields(fields: dict[str, str]) -> dict[Any, Any]:
    """The dead letter's event, as it stood on its stream (without the failure notes)."""
    return {name: fields[name] for name in _EVENT_FIELDS if name in fields}


def _audit_fields(entry: Any) -> Any:
    """The replay's ``audit.recorded`` event, as stream fields."""
    return audit_event(entry).to_stream_fields()


def _replay_audit_entry(
    audit: AuditContext,
    entry_id: str,
    item: dict[str, Any],
    stream: str,
    dead_stream: str,
    group: str,
) -> Any:
    return audit.entry(
        action="dead_letter.replayed",
        target_type="dead_letter",
        target_id=entry_id,
        before={
            "stream": dead_stream,
            "event_id": item["event_id"],
            "event_type": item["event_type"],
            "reason": item["reason"],
        },
        after={"stream": stream, "group": group, "event_id": item["event_id"]},
    )
