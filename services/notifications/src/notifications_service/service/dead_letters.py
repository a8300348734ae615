"""Events the consumer gave up on, read back from the dead-letter stream for admins."""

from datetime import UTC, datetime
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from notifications_service.errors import InvalidRequest

__all__ = ["list_dead_letters", "parse_cursor"]

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
