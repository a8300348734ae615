"""The user -> chat answer is cached: one auth lookup per user, dropped when the link changes."""

import asyncio
import uuid
from datetime import UTC, datetime

import pytest

from auth_service import repository as auth_repository
from notifications_service.clients.auth import UnknownUser
from notifications_service.clients.chats import ChatDirectory
from storefront_kit.db import create_sessionmaker

from .conftest import Stack, bearer, event, new_chat_id, order_data, problem

# On one Redis server and on a three-master Redis Cluster (docs/redis.md).
pytestmark = pytest.mark.redis_modes

FORGET = "/internal/notifications/chats/forget"


async def relink(stack: Stack, user_id: object, old: int, new: int) -> None:
    """Move the user's link in auth's database from ``old`` to ``new`` (as auth does)."""
    now = datetime.now(UTC)
    async with create_sessionmaker(stack.auth_engine)() as session, session.begin():
        await auth_repository.unlink_chat(session, user_id, old, now=now)  # type: ignore[arg-type]
        assert await auth_repository.link_chat(session, user_id, new, now=now)  # type: ignore[arg-type]


async def test_a_second_message_for_the_same_user_asks_auth_nothing(stack: Stack) -> None:
    user_id, chat_id = await stack.linked_user(new_chat_id())
    base = order_data(user_id)
    ids = {"order_id": base["order_id"], "user_id": base["user_id"]}
    await stack.publish(event("order.created", base))
    await stack.sandbox.wait_messages(chat_id)
    await stack.publish(event("order.status_changed", {**ids, "status": "PROCESSING"}))
    await stack.sandbox.wait_messages(chat_id, 2)

    assert stack.auth_calls.chat_lookups(user_id) == 1
    cached = await stack.redis.hget(f"notifications:chat:{user_id}", "chat")
    assert cached is not None
    assert str(chat_id) not in cached  # sealed: the chat id is personal data


async def test_a_link_change_told_by_auth_reaches_the_next_message(stack: Stack) -> None:
    old_chat, new_chat = new_chat_id(), new_chat_id()
    user_id, _ = await stack.linked_user(old_chat)
    await stack.publish(event("order.created", order_data(user_id)))
    await stack.sandbox.wait_messages(old_chat)

    await relink(stack, user_id, old_chat, new_chat)
    told = await stack.client.post(
        FORGET, json={"user_id": str(user_id)}, headers=bearer(stack.keys.service_token("auth"))
    )
    assert told.status_code == 200, told.text
    assert told.json() == {"status": "forgotten"}
    await stack.publish(event("order.created", order_data(user_id)))
    await stack.sandbox.wait_messages(new_chat)

    assert len(await stack.sandbox.messages(old_chat)) == 1
    assert stack.auth_calls.chat_lookups(user_id) == 2


async def test_with_auth_down_a_cached_chat_still_gets_its_messages(stack: Stack) -> None:
    user_id, chat_id = await stack.linked_user(new_chat_id())
    await stack.publish(event("order.created", order_data(user_id)))
    await stack.sandbox.wait_messages(chat_id)

    stack.auth_calls.down = True
    await stack.publish(event("order.created", order_data(user_id)))
    await stack.sandbox.wait_messages(chat_id, 2)

    assert stack.auth_calls.chat_lookups(user_id) == 1


async def test_a_lookup_in_flight_when_the_link_changes_caches_nothing(stack: Stack) -> None:
    """Auth answered with the old chat, the forget came before the answer was stored."""
    old_chat, new_chat = new_chat_id(), new_chat_id()
    user_id, _ = await stack.linked_user(old_chat)
    chats: ChatDirectory = stack.state.chats
    release = asyncio.Event()
    stack.auth_calls.hold, stack.auth_calls.arrived = release, asyncio.Event()

    lookup = asyncio.create_task(chats.chat_of(user_id))
    await asyncio.wait_for(stack.auth_calls.arrived.wait(), timeout=5)
    await relink(stack, user_id, old_chat, new_chat)
    await chats.forget(user_id)
    release.set()
    stale = await lookup  # read before the change: the old chat
    stack.auth_calls.hold = None

    assert stale == old_chat
    assert await chats.chat_of(user_id) == new_chat  # asked auth again
    assert await chats.chat_of(user_id) == new_chat  # now from the cache
    assert stack.auth_calls.chat_lookups(user_id) == 2


async def test_an_unlinked_user_is_cached_as_such_until_told(stack: Stack) -> None:
    user_id, _ = await stack.linked_user(None)
    chats: ChatDirectory = stack.state.chats
    assert await chats.chat_of(user_id) is None
    assert await chats.chat_of(user_id) is None
    assert stack.auth_calls.chat_lookups(user_id) == 1

    chat_id = new_chat_id()
    async with create_sessionmaker(stack.auth_engine)() as session, session.begin():
        now = datetime.now(UTC)
        assert await auth_repository.link_chat(session, user_id, chat_id, now=now)
    await chats.forget(user_id)
    await stack.publish(event("order.created", order_data(user_id)))
    await stack.sandbox.wait_messages(chat_id)
    assert stack.auth_calls.chat_lookups(user_id) == 2


async def test_only_auth_may_tell_a_link_change(stack: Stack) -> None:
    body = {"user_id": "5f0c6d2e-8d0f-4c1e-9a55-0d9a3f1f2b6c"}
    orders = await stack.client.post(
        FORGET, json=body, headers=bearer(stack.keys.service_token("orders"))
    )
    nobody = await stack.client.post(FORGET, json=body)
    malformed = await stack.client.post(
        FORGET, json={"user_id": "x"}, headers=bearer(stack.keys.service_token("auth"))
    )

    problem(orders, 403, "caller_not_allowed")
    assert nobody.status_code == 401
    assert malformed.status_code == 422
    assert not await stack.redis.exists(f"notifications:chat:{body['user_id']}")


async def test_a_batch_of_users_is_looked_up_at_once_each_miss_asked_once(stack: Stack) -> None:
    # Users whose keys sit in different hash slots (on the cluster, on different nodes).
    cached = [await stack.linked_user(new_chat_id()) for _ in range(3)]
    missing = [await stack.linked_user(new_chat_id()) for _ in range(3)]
    unlinked, _ = await stack.linked_user(None)
    unknown = uuid.uuid4()
    chats: ChatDirectory = stack.state.chats
    for user_id, chat_id in cached:
        assert await chats.chat_of(user_id) == chat_id

    users = [u for u, _ in cached] + [u for u, _ in missing] + [unlinked, unknown]
    found = await chats.chats_of([*users, *users])  # twice: each user looked up once

    assert set(found) == set(users)
    for user_id, chat_id in [*cached, *missing]:
        assert found[user_id] == chat_id
        assert stack.auth_calls.chat_lookups(user_id) == 1
    assert found[unlinked] is None
    assert isinstance(found[unknown], UnknownUser)
    # The misses were stored (unknown users are not): the next batch asks auth nothing.
    again = await chats.chats_of(users)
    assert {u: c for u, c in again.items() if u != unknown} == {
        u: c for u, c in found.items() if u != unknown
    }
    for user_id in users:
        assert stack.auth_calls.chat_lookups(user_id) == (2 if user_id == unknown else 1)
    assert not await stack.redis.exists(f"notifications:chat:{unknown}")
