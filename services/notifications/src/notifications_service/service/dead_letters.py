"""Events the consumer gave up on, read back from the dead-letter stream for admins."""

from datetime import UTC, datetime
from typing import Any

import orjson
from redis.asyncio import Redis

__all__ = ["list_dead_letters"]


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
    upper = f"({before}" if before else "+"
    while len(items) < limit:
        chunk: list[Any] = await redis.xrevrange(stream, max=upper, min="-", count=limit) or []
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
