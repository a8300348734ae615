"""Admins replay a dead letter: the event goes back to the consumer, leaves the
dead-letter stream, and one audit entry reaches auth's audit log, all in one Redis
transaction; a replayed entry cannot be replayed twice."""

import asyncio
from typing import Any

import pytest

from storefront_kit.audit import AUDIT_STREAM
from storefront_stack.checks import rows

from .conftest import Stack, bearer, event, eventually, new_chat_id, order_data, problem

# On one Redis server and on a three-master Redis Cluster (docs/redis.md).
pytestmark = pytest.mark.redis_modes

DEAD = "orders.events.dead"


def replay_path(entry_id: str) -> str:
    return f"/api/v1/admin/notifications/dead-letters/{entry_id}/replay"


async def dead_letter(stack: Stack, data: dict[str, Any], *, group: str = "notifications") -> Any:
    """A dead letter as the consumer writes one (the event's fields, why, whose)."""
    envelope = event("order.created", data)
    fields = {
        **envelope.to_stream_fields(),
        "dead_reason": "NetworkError('telegram down')",
        "group": group,
        "entry_id": "1-1",
    }
    entry_id = await stack.redis.xadd(DEAD, fields)  # type: ignore[arg-type]
    return entry_id, envelope


async def audit_rows(stack: Stack, target_id: str) -> list[dict[str, Any]]:
    entries = await rows(
        stack.auth_engine, "SELECT * FROM audit_entry WHERE target_id = :id", {"id": target_id}
    )
    return [dict(row._mapping) for row in entries]


async def test_a_replayed_dead_letter_is_delivered_and_audited_once(stack: Stack) -> None:
    user_id, chat_id = await stack.linked_user(new_chat_id())
    entry_id, envelope = await dead_letter(stack, order_data(user_id))
    admin = bearer(stack.keys.user_token("admin", subject="admin-replay"))
    headers = {**admin, "X-Request-ID": "audit-replay-1", "X-Real-IP": "198.51.100.20"}

    replayed = await stack.client.post(replay_path(entry_id), headers=headers)
    again = await stack.client.post(replay_path(entry_id), headers=admin)

    assert replayed.status_code == 200, replayed.text
    body = replayed.json()
    assert body["event_id"] == str(envelope.id)
    assert body["entry_id"] == entry_id
    problem(again, 404, "dead_letter_not_found")
    assert await stack.redis.xrange(DEAD, min=entry_id, max=entry_id) == []
    assert body["replayed_entry_id"] in {
        entry for entry, _ in await stack.redis.xrange("orders.events")
    }
    await stack.sandbox.wait_messages(chat_id)
    [row] = await eventually(lambda: audit_rows(stack, entry_id))
    assert str(row["id"]) == body["audit_entry_id"]
    assert row["action"] == "dead_letter.replayed"
    assert row["service"] == "notifications"
    assert row["target_type"] == "dead_letter"
    assert (row["actor_id"], row["actor_roles"]) == ("admin-replay", ["admin"])
    assert (row["request_id"], row["client_ip"]) == ("audit-replay-1", "198.51.100.20")
    assert row["before"]["event_id"] == str(envelope.id)
    assert row["before"]["reason"] == "NetworkError('telegram down')"
    assert row["after"] == {
        "stream": "orders.events",
        "group": "notifications",
        "event_id": str(envelope.id),
    }
    assert len(await stack.redis.xrange(AUDIT_STREAM)) == 1


async def test_concurrent_replays_of_one_dead_letter_replay_it_once(stack: Stack) -> None:
    user_id, _ = await stack.linked_user(new_chat_id())
    entry_id, _ = await dead_letter(stack, order_data(user_id))
    admin = bearer(stack.keys.user_token("admin"))
    before = await stack.redis.xlen("orders.events")

    answers = await asyncio.gather(
        *(stack.client.post(replay_path(entry_id), headers=admin) for _ in range(5))
    )

    assert sorted(answer.status_code for answer in answers) == [200, 404, 404, 404, 404]
    assert await stack.redis.xlen("orders.events") == before + 1
    assert await stack.redis.xlen(AUDIT_STREAM) == 1


async def test_replays_refused_change_and_record_nothing(stack: Stack) -> None:
    user_id, _ = await stack.linked_user(new_chat_id())
    foreign, _ = await dead_letter(stack, order_data(user_id), group="someone-else")
    mine, _ = await dead_letter(stack, order_data(user_id))
    admin = bearer(stack.keys.user_token("admin"))
    moderator = bearer(stack.keys.user_token("moderator"))

    problem(
        await stack.client.post(replay_path(foreign), headers=admin), 404, "dead_letter_not_found"
    )
    problem(
        await stack.client.post(replay_path("9-9"), headers=admin), 404, "dead_letter_not_found"
    )
    assert (await stack.client.post(replay_path(mine), headers=moderator)).status_code == 403
    assert (await stack.client.post(replay_path("0-0"), headers=admin)).status_code == 422
    assert (await stack.client.post(replay_path("latest"), headers=admin)).status_code == 422

    assert await stack.redis.xlen(DEAD) == 2
    assert await stack.redis.xlen(AUDIT_STREAM) == 0


async def test_a_dead_letter_page_size_out_of_bounds_is_the_kits_one_problem(
    stack: Stack,
) -> None:
    admin = bearer(stack.keys.user_token("admin"))
    path = "/api/v1/admin/notifications/dead-letters"
    maximum = stack.state.settings.page_size_max
    for limit, kind in ((maximum + 1, "less_than_equal"), (0, "greater_than_equal")):
        response = await stack.client.get(path, params={"limit": limit}, headers=admin)
        body = problem(response, 422, "validation_error")
        assert body["title"] == "Request validation failed"
        assert [(e["loc"], e["type"]) for e in body["errors"]] == [(["query", "limit"], kind)]
    largest = await stack.client.get(path, params={"limit": maximum}, headers=admin)
    assert largest.status_code == 200, largest.text
