"""orders.events read in batches: one chat lookup, one claim and one finish statement per
batch, and still every guarantee of the single-event path, entry by entry."""

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import uuid4

from sqlalchemy import event as sqlalchemy_event
from sqlalchemy.ext.asyncio import AsyncEngine

from notifications_service import repository
from notifications_service.models import NotificationStatus
from notifications_service.repository import Claim
from notifications_service.service.notifier import ClaimBusy, OrderNotifier
from storefront_kit.events import BatchEntry, EventEnvelope

from .conftest import (
    STREAM,
    Stack,
    event,
    eventually,
    new_chat_id,
    order_data,
)


@contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SQL the engine runs inside the block (as the database gets it)."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(" ".join(statement.split()))

    sqlalchemy_event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sqlalchemy_event.remove(engine.sync_engine, "before_cursor_execute", record)


def claims(seen: list[str]) -> int:
    return sum(s.startswith("INSERT INTO notification_log") for s in seen)


def finishes(seen: list[str]) -> int:
    return sum(s.startswith("UPDATE notification_log") for s in seen)


async def pending(stack: Stack) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = await stack.redis.xpending_range(
        STREAM, "notifications", min="-", max="+", count=100
    )
    return found


async def test_a_batch_for_several_users_sends_each_message_once_with_one_claim_and_finish(
    start_stack: Any,
) -> None:
    async with start_stack(consumer_enabled=False) as stack:
        users = [await stack.linked_user(new_chat_id()) for _ in range(4)]
        unlinked, _ = await stack.linked_user(None)
        published: dict[int, list[EventEnvelope]] = {}
        for user_id, chat_id in users:
            assert chat_id is not None
            data = order_data(user_id, status="CONFIRMED", payment_id="p", amount=4499)
            published[chat_id] = [
                await stack.publish(event("order.created", data)),
                await stack.publish(event("order.confirmed", data)),  # no message
                await stack.publish(event("payment.captured", data)),
            ]
        skipped = await stack.publish(event("order.created", order_data(unlinked)))
        consumer = stack.state.order_consumer
        await consumer.ensure_group()

        with statements(stack.engine) as seen:
            assert await consumer.process_batch() == 13

        assert claims(seen) == 1  # one statement claimed the eight messages
        assert finishes(seen) == 1  # and one recorded them
        for chat_id, (created, _confirmed, captured) in published.items():
            messages = await stack.sandbox.messages(chat_id)
            assert len(messages) == 2
            assert messages[0]["text"].startswith("🛒 <b>Order received</b>")
            assert messages[1]["text"].startswith("🧾 <b>Receipt</b>")
            (created_row,) = await stack.log_rows(created.id)
            (receipt_row,) = await stack.log_rows(captured.id)
            assert [created_row["status"], receipt_row["status"]] == ["sent", "sent"]
            assert {created_row["message_id"], receipt_row["message_id"]} == {
                m["message_id"] for m in messages
            }
            assert created_row["chat_id"] == chat_id
            assert created_row["attempts"] == receipt_row["attempts"] == 1
        assert await stack.log_rows(skipped.id) == []
        assert await pending(stack) == []
        for user_id, _chat in users:
            assert stack.auth_calls.chat_lookups(user_id) == 1  # one per user, not per event

        # The batch again (a redelivery): nothing more is sent, nothing more asked of auth.
        for events in published.values():
            for again in events:
                await stack.publish(again)
        with statements(stack.engine) as seen:
            assert await consumer.process_batch() == 12
        assert claims(seen) == 1
        assert finishes(seen) == 0
        for chat_id in published:
            assert len(await stack.sandbox.messages(chat_id)) == 2
        for user_id, _chat in users:
            assert stack.auth_calls.chat_lookups(user_id) == 1


async def test_an_entry_that_fails_stays_pending_and_is_retried_while_the_others_are_acked(
    start_stack: Any,
) -> None:
    async with start_stack(consumer_enabled=False) as stack:
        users = [await stack.linked_user(new_chat_id()) for _ in range(3)]
        published = [
            await stack.publish(event("order.created", order_data(user_id)))
            for user_id, _chat in users
        ]
        (_, busy_chat), busy = users[1], published[1]
        assert busy_chat is not None
        # Another replica is sending the second one right now.
        async with stack.engine.connect() as connection:
            held, held_id = await repository.claim(
                connection,
                event_id=busy.id,
                event_type=busy.type,
                chat_id=busy_chat,
                kind="order_created",
                consumer="another-replica",
                lease_s=90,
            )
            await connection.commit()
        assert held is Claim.CLAIMED
        assert held_id is not None
        consumer = stack.state.order_consumer
        await consumer.ensure_group()

        assert await consumer.process_batch() == 3

        (waiting,) = await pending(stack)
        assert waiting["times_delivered"] == 1
        attempts_key = f"{STREAM}:notifications:attempts"
        assert await stack.redis.hget(attempts_key, waiting["message_id"]) == "1"
        for (_user, chat_id), created in zip(users, published, strict=True):
            assert chat_id is not None
            sent = len(await stack.sandbox.messages(chat_id))
            assert sent == (0 if created is busy else 1)

        # Still held: the retry fails again and counts a second attempt.
        assert await consumer.process_batch(pending=True) == 1
        assert await stack.redis.hget(attempts_key, waiting["message_id"]) == "2"
        # The other replica's send failed: the retry claims the row and sends it.
        async with stack.engine.connect() as connection:
            await repository.finish(connection, held_id, status=NotificationStatus.FAILED)
            await connection.commit()
        assert await consumer.process_batch(pending=True) == 1

        assert len(await stack.sandbox.messages(busy_chat)) == 1
        (row,) = await stack.log_rows(busy.id)
        assert row["status"] == "sent"
        assert row["attempts"] == 2  # the other replica's try and this one
        assert await pending(stack) == []
        assert await stack.redis.hlen(attempts_key) == 0
        assert await stack.redis.xlen("orders.events.dead") == 0


async def test_a_poison_entry_in_a_batch_is_dead_lettered_and_the_rest_proceed(
    start_stack: Any,
) -> None:
    async with start_stack(consumer_enabled=False) as stack:
        user_id, chat_id = await stack.linked_user(new_chat_id())
        assert chat_id is not None
        before = await stack.publish(event("order.created", order_data(user_id)))
        malformed = await stack.publish(
            event("payment.captured", {"order_id": "o-1", "user_id": str(user_id)})
        )
        not_a_user = await stack.publish(event("order.created", order_data("not-a-uuid")))
        failed = {
            "order_id": str(uuid4()),
            "user_id": str(user_id),
            "status": "FAILED",
            "reason": "payment_declined",
            "total": 4499,
            "currency": "EUR",
        }
        after = await stack.publish(event("order.failed", failed))
        consumer = stack.state.order_consumer
        await consumer.ensure_group()

        assert await consumer.process_batch() == 4

        dead = await stack.redis.xrange("orders.events.dead")
        assert [fields["id"] for _, fields in dead] == [str(malformed.id), str(not_a_user.id)]
        assert dead[0][1]["dead_reason"].startswith("poison: payment.captured data is malformed")
        assert dead[1][1]["dead_reason"] == "poison: user_id 'not-a-uuid' is not a user id"
        messages = await stack.sandbox.messages(chat_id)
        assert len(messages) == 2
        assert messages[0]["text"].startswith("🛒 <b>Order received</b>")
        assert [row["status"] for row in await stack.log_rows(before.id)] == ["sent"]
        assert [row["status"] for row in await stack.log_rows(after.id)] == ["sent"]
        assert await pending(stack) == []


async def test_two_notifiers_on_one_batch_in_opposite_orders_send_each_message_once(
    start_stack: Any,
) -> None:
    # The claim statements race row by row (and would deadlock if they locked in the
    # orders they were given): each message is still claimed, sent and recorded once.
    async with start_stack(consumer_enabled=False) as stack:
        users = [await stack.linked_user(new_chat_id()) for _ in range(12)]
        entries = [
            BatchEntry(str(n), event(kind, order_data(user_id)))
            for n, (user_id, _chat) in enumerate(users)
            for kind in ("order.created", "payment.captured")
        ]
        state = stack.state
        notifiers = [
            OrderNotifier(
                engine=state.engine,
                telegram=state.telegram,
                chats=state.chats,
                consumer=f"replica-{n}",
                lease_s=90,
            )
            for n in range(2)
        ]

        forward, backward = await asyncio.gather(
            notifiers[0].handle_batch(entries), notifiers[1].handle_batch(entries[::-1])
        )

        for mine, theirs in zip(forward, backward[::-1], strict=True):
            assert mine is None or isinstance(mine, ClaimBusy)
            assert theirs is None or isinstance(theirs, ClaimBusy)
            assert mine is None or theirs is None  # busy only while the other sends it
        for _user, chat_id in users:
            assert chat_id is not None
            assert len(await stack.sandbox.messages(chat_id)) == 2
        for entry in entries:
            (row,) = await stack.log_rows(entry.event.id)
            assert row["status"] == "sent"
            assert row["attempts"] == 1


async def test_two_replicas_on_a_burst_of_copies_send_each_message_exactly_once(
    stack: Stack,
) -> None:
    users = [await stack.linked_user(new_chat_id()) for _ in range(10)]
    async with stack.second_replica():
        published = [
            event(kind, order_data(user_id))
            for user_id, _chat in users
            for kind in ("order.created", "payment.captured")
        ]
        async with stack.redis.pipeline(transaction=False) as pipe:
            for _copy in range(2):  # the burst, published twice by a relay, all at once
                for created in published:
                    pipe.xadd(STREAM, created.to_stream_fields())  # type: ignore[arg-type]
            await pipe.execute()
        for _user, chat_id in users:
            assert chat_id is not None
            await stack.sandbox.wait_messages(chat_id, 2)
        await eventually(stack.settled, timeout=10)
        await asyncio.sleep(0.2)  # anything sent late would show now
        consumers = await stack.redis.xinfo_consumers(STREAM, "notifications")

    assert len(consumers) == 2
    for _user, chat_id in users:
        assert chat_id is not None
        assert len(await stack.sandbox.messages(chat_id)) == 2
    for created in published:
        (row,) = await stack.log_rows(created.id)
        assert row["status"] == "sent"
    assert await stack.redis.xlen("orders.events.dead") == 0
