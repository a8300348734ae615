"""An erased user's notifications: exported for auth, then deleted from ``user.erased``
by the ``notifications-erasure`` group: the log rows, the cached chat and the dead
letters naming the user, once in effect, also after notifications was down."""

import uuid
from typing import Any

import orjson
from sqlalchemy import text

from notifications_service.service.privacy import ERASURE_GROUP, USERS_STREAM, UserErasure
from storefront_kit.events import EventEnvelope

from .conftest import Stack, bearer, event, eventually, new_chat_id, order_data

DEAD = "orders.events.dead"


def _erased(user_id: uuid.UUID) -> EventEnvelope:
    return EventEnvelope.new(type="user.erased", source="auth", data={"user_id": str(user_id)})


async def _log_of(stack: Stack, user_id: uuid.UUID) -> list[dict[str, Any]]:
    async with stack.engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT * FROM notification_log WHERE user_id = :u"), {"u": str(user_id)}
        )
        return [dict(r._mapping) for r in rows]


async def _everything(stack: Stack) -> str:
    async with stack.engine.connect() as connection:
        rows = await connection.execute(text("SELECT * FROM notification_log"))
        return orjson.dumps([dict(r._mapping) for r in rows], default=str).decode()


async def _deliver(stack: Stack, user_id: uuid.UUID, chat_id: int) -> None:
    confirmed = await stack.publish(event("payment.captured", order_data(user_id)))
    await eventually(lambda: stack.sandbox.messages(chat_id))
    await eventually(lambda: _log_of(stack, user_id))
    assert (await stack.log_rows(confirmed.id))[0]["chat_id"] == chat_id


async def test_auth_gets_the_users_messages_and_cached_chat(stack: Stack) -> None:
    user_id, chat_id = await stack.linked_user(new_chat_id())
    assert chat_id is not None
    await _deliver(stack, user_id, chat_id)
    path = f"/internal/notifications/users/{user_id}/export"

    answer = await stack.client.get(path, headers=bearer(stack.keys.service_token("auth")))

    assert answer.status_code == 200, answer.text
    exported = answer.json()
    assert exported["cached_chat_id"] == chat_id
    [message] = exported["messages"]
    assert message["chat_id"] == chat_id
    assert message["event_type"] == "payment.captured"
    assert message["status"] == "sent"
    refused = await stack.client.get(
        path, headers=bearer(stack.keys.service_token("orders", "notifications"))
    )
    assert refused.status_code in (401, 403)


async def test_an_erased_users_log_cache_and_dead_letters_go_once_and_others_stay(
    stack: Stack,
) -> None:
    user_id, chat_id = await stack.linked_user(new_chat_id())
    other_id, other_chat = await stack.linked_user(new_chat_id())
    assert chat_id is not None
    assert other_chat is not None
    await _deliver(stack, user_id, chat_id)
    await _deliver(stack, other_id, other_chat)
    for who in (user_id, other_id):
        dead = event("order.created", order_data(who))
        await stack.redis.xadd(DEAD, dead.to_stream_fields())  # type: ignore[arg-type]
    assert await stack.redis.exists(f"notifications:chat:{user_id}") == 1

    await stack.redis.xadd(USERS_STREAM, _erased(user_id).to_stream_fields())  # type: ignore[arg-type]

    async def gone() -> bool:
        return not await _log_of(stack, user_id) and not await stack.redis.exists(
            f"notifications:chat:{user_id}"
        )

    await eventually(gone)

    async def dead_cleared() -> bool:
        return str(user_id) not in str(await stack.redis.xrange(DEAD))

    await eventually(dead_cleared)
    assert str(other_id) in str(await stack.redis.xrange(DEAD))
    assert len(await _log_of(stack, other_id)) == 1
    everything = await _everything(stack)
    assert str(user_id) not in everything
    assert str(user_id) not in str(await stack.redis.keys("*"))
    # Delivered again: nothing more to delete, nothing else touched.
    handler = UserErasure(
        sessionmaker=stack.state.sessionmaker,
        redis=stack.state.redis,
        chats=stack.state.chats,
        dead_letter_streams=(DEAD,),
    )
    await handler(_erased(user_id))
    assert len(await _log_of(stack, other_id)) == 1
    assert await stack.redis.xlen(DEAD) >= 1


async def test_an_erasure_published_while_notifications_was_down_is_done_when_it_is_back(
    start_stack: Any,
) -> None:
    async with start_stack() as stack:
        user_id, chat_id = await stack.linked_user(new_chat_id())
        assert chat_id is not None
        await _deliver(stack, user_id, chat_id)
        await stack.state.erasure_consumer.ensure_group()
    # Notifications' consumers are down (a replica without them); auth erases the user.
    async with start_stack(consumer_enabled=False) as stack:
        await stack.redis.xadd(USERS_STREAM, _erased(user_id).to_stream_fields())  # type: ignore[arg-type]
        groups = {g["name"]: g for g in await stack.redis.xinfo_groups(USERS_STREAM)}
        assert groups[ERASURE_GROUP]["pending"] == 0
        assert len(await _log_of(stack, user_id)) == 1  # nobody consumed it
    async with start_stack() as stack:

        async def gone() -> bool:
            return not await _log_of(stack, user_id)

        await eventually(gone)
        groups = {g["name"]: g for g in await stack.redis.xinfo_groups(USERS_STREAM)}
        assert groups[ERASURE_GROUP]["pending"] == 0
