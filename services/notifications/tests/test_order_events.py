"""orders.events -> Telegram: the right text, once per (event, chat), whatever happens."""

import asyncio
import uuid
from typing import Any

import pytest

from .conftest import (
    Stack,
    event,
    eventually,
    new_chat_id,
    order_data,
)


async def settle(stack: Stack, *, timeout: float = 5.0) -> None:
    await eventually(stack.settled, timeout=timeout)


async def test_payment_captured_sends_a_receipt_with_every_line_escaped(stack: Stack) -> None:
    user_id, chat_id = await stack.linked_user(new_chat_id())
    data = order_data(
        user_id,
        status="CONFIRMED",
        lines=[
            {
                "sku": "MUG_1",
                "qty": 2,
                "unit_price": 1250,
                "currency": "EUR",
                "name": "<Tom & Jerry>",
            },
            {"sku": "TEE*2", "qty": 1, "unit_price": 199999, "currency": "EUR", "name": "*_bold_*"},
        ],
        subtotal=202499,
        total=202499,
        payment_id="pay_1",
        amount=202499,
    )
    captured = await stack.publish(event("payment.captured", data))

    (message,) = await stack.sandbox.wait_messages(chat_id)

    paid = captured.occurred_at.strftime("%Y-%m-%d %H:%M UTC")
    assert message["parse_mode"] == "HTML"
    assert message["text"] == (
        "🧾 <b>Receipt</b>\n"
        f"Order <code>{data['order_id']}</code>\n"
        f"Paid: {paid}\n"
        "\n"
        "• &lt;Tom &amp; Jerry&gt; (<code>MUG_1</code>)\n"
        "   2 x 12.50 EUR = 25.00 EUR\n"
        "• *_bold_* (<code>TEE*2</code>)\n"
        "   1 x 1,999.99 EUR = 1,999.99 EUR\n"
        "\n"
        "Subtotal: 2,024.99 EUR\n"
        "<b>Total paid: 2,024.99 EUR</b>"
    )
    await settle(stack)
    (row,) = await stack.log_rows(captured.id)
    assert row["status"] == "sent"
    assert row["kind"] == "receipt"
    assert row["chat_id"] == chat_id
    assert row["message_id"] == message["message_id"]


async def test_every_customer_facing_event_has_its_message(stack: Stack) -> None:
    user_id, chat_id = await stack.linked_user(new_chat_id())
    base = order_data(user_id)
    order_id, user = base["order_id"], base["user_id"]
    ids = {"order_id": order_id, "user_id": user}
    for published in (
        event("order.created", base),
        event("order.confirmed", {**base, "status": "CONFIRMED"}),  # no message
        event("order.status_changed", {**ids, "status": "CONFIRMED", "previous": "PENDING"}),
        event("order.status_changed", {**ids, "status": "PROCESSING", "previous": "CONFIRMED"}),
        event(
            "order.status_changed",
            {**ids, "status": "SHIPPED", "previous": "PROCESSING", "tracking_number": "TRK<1>"},
        ),
        event("order.status_changed", {**ids, "status": "DELIVERED", "previous": "SHIPPED"}),
        event(
            "order.status_changed",
            {**ids, "status": "CANCELLED", "previous": "CONFIRMED", "reason": "customer_request"},
        ),
        event(
            "order.failed",
            {
                **ids,
                "status": "FAILED",
                "reason": "payment_declined",
                "total": 4499,
                "currency": "EUR",
            },
        ),
        event(
            "payment.refunded",
            {**ids, "payment_id": "p1", "amount": 4499, "currency": "EUR", "reason": "cancelled"},
        ),
        event("stock.changed", {"sku": "X"}),  # not ours: ignored
    ):
        await stack.publish(published)

    messages = await stack.sandbox.wait_messages(chat_id, 7)
    await settle(stack)

    texts = [m["text"] for m in await stack.sandbox.messages(chat_id)]
    assert len(texts) == 7
    created, processing, shipped, delivered, cancelled, failed, refunded = texts
    assert created.startswith(f"🛒 <b>Order received</b> <code>{order_id}</code>\n")
    assert "• Mug (<code>MUG-1</code>)\n   2 x 12.50 EUR = 25.00 EUR" in created
    assert "<b>Total: 44.99 EUR</b>" in created
    assert processing.startswith("⚙️ <b>Your order is being prepared</b>")
    assert "Tracking number: <code>TRK&lt;1&gt;</code>" in shipped
    assert delivered.startswith("📦 <b>Your order was delivered</b>")
    assert "Reason: customer request" in cancelled
    assert "Reason: payment declined" in failed
    assert "Amount: 44.99 EUR" in refunded
    assert all(m["parse_mode"] == "HTML" for m in messages)


async def test_a_redelivered_event_sends_nothing_more(stack: Stack) -> None:
    user_id, chat_id = await stack.linked_user(new_chat_id())
    created = event("order.created", order_data(user_id))

    await stack.publish(created, copies=2)  # a relay that crashed before marking it published
    await stack.sandbox.wait_messages(chat_id)
    await settle(stack)
    await stack.publish(created)  # and once more, later
    await settle(stack)
    await asyncio.sleep(0.1)

    assert len(await stack.sandbox.messages(chat_id)) == 1
    (row,) = await stack.log_rows(created.id)
    assert row["status"] == "sent"
    assert row["attempts"] == 1


async def test_two_replicas_on_the_same_events_send_each_message_once(stack: Stack) -> None:
    users = [await stack.linked_user(new_chat_id()) for _ in range(6)]
    async with stack.second_replica():
        published = []
        for user_id, _chat in users:
            created = event("order.created", order_data(user_id))
            published.append(created)
            await stack.publish(created, copies=3)  # both replicas race for the same event
        for _user, chat_id in users:
            await stack.sandbox.wait_messages(chat_id)
        await settle(stack)
        consumers = await stack.redis.xinfo_consumers("orders.events", "notifications")

    assert len(consumers) == 2
    for (_user, chat_id), created in zip(users, published, strict=True):
        assert len(await stack.sandbox.messages(chat_id)) == 1
        (row,) = await stack.log_rows(created.id)
        assert row["status"] == "sent"


async def test_users_without_a_linked_chat_are_skipped(stack: Stack) -> None:
    unlinked, _ = await stack.linked_user(None)
    unknown = uuid.uuid4()
    first = await stack.publish(event("order.created", order_data(unlinked)))
    second = await stack.publish(event("order.created", order_data(unknown)))

    await settle(stack)

    assert await stack.log_rows(first.id) == []
    assert await stack.log_rows(second.id) == []
    assert await stack.redis.xlen("orders.events.dead") == 0


async def test_a_429_is_waited_out_and_the_message_sent_once(stack: Stack) -> None:
    user_id, chat_id = await stack.linked_user(new_chat_id())
    await stack.sandbox.faults(mode="flood", retry_after=1, times=1)
    created = await stack.publish(event("order.created", order_data(user_id)))

    (message,) = await stack.sandbox.wait_messages(chat_id, timeout=5)
    await settle(stack)

    assert message["text"].startswith("🛒 <b>Order received</b>")
    assert (await stack.sandbox.client.get("/faults")).json()["injected"] == 1
    (row,) = await stack.log_rows(created.id)
    assert row["status"] == "sent"


async def test_a_chat_that_blocked_the_bot_is_recorded_not_retried(stack: Stack) -> None:
    user_id, _chat_id = await stack.linked_user(new_chat_id())
    await stack.sandbox.faults(mode="blocked")
    created = await stack.publish(event("order.created", order_data(user_id)))

    await settle(stack)

    (row,) = await stack.log_rows(created.id)
    assert row["status"] == "undeliverable"
    assert "blocked" in row["last_error"]
    assert row["attempts"] == 1
    assert (await stack.sandbox.client.get("/faults")).json()["injected"] == 1
    assert await stack.redis.xlen("orders.events.dead") == 0


async def dead_letters(stack: Stack, headers: dict[str, str], **params: Any) -> Any:
    return await stack.client.get(
        "/api/v1/admin/notifications/dead-letters", headers=headers, params=params
    )


async def test_poison_and_undeliverable_events_are_dead_lettered_for_admins(
    start_stack: Any,
) -> None:
    async with start_stack(telegram_send_attempts=2, consumer_max_attempts=2) as stack:
        user_id, chat_id = await stack.linked_user(new_chat_id())
        poison = await stack.publish(
            event("payment.captured", {"order_id": "o-1", "user_id": str(user_id)})
        )
        not_a_user = await stack.publish(event("order.created", order_data("not-a-uuid")))
        await settle(stack)
        await stack.sandbox.faults(mode="error", error_status=503)
        failing = await stack.publish(event("order.created", order_data(user_id)))
        await settle(stack, timeout=10)

        listed = await dead_letters(stack, stack.admin)
        first_page = await dead_letters(stack, stack.admin, limit=1)
        second_page = await dead_letters(
            stack, stack.admin, limit=5, before=first_page.json()["next_before"]
        )
        customer = await dead_letters(stack, {"Authorization": "Bearer x"})
        moderator = await dead_letters(
            stack, {"Authorization": f"Bearer {stack.keys.user_token('moderator')}"}
        )
        rows = await stack.log_rows(failing.id)

    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    assert [item["event_id"] for item in items] == [
        str(failing.id),
        str(not_a_user.id),
        str(poison.id),
    ]
    newest, middle, oldest = items
    assert newest["event_type"] == "order.created"
    assert newest["reason"].startswith("NetworkError(")
    assert newest["envelope"]["data"]["user_id"] == str(user_id)
    assert middle["reason"] == "poison: user_id 'not-a-uuid' is not a user id"
    assert oldest["reason"].startswith("poison: payment.captured data is malformed: ")
    assert "lines" in oldest["reason"]
    assert oldest["envelope"]["id"] == str(poison.id)
    assert [i["event_id"] for i in first_page.json()["items"]] == [str(failing.id)]
    assert [i["event_id"] for i in second_page.json()["items"]] == [
        str(not_a_user.id),
        str(poison.id),
    ]
    assert second_page.json()["next_before"] is None
    assert customer.status_code == 401
    assert moderator.status_code == 403
    assert await stack.sandbox.messages(chat_id) == []
    assert rows[0]["status"] == "failed"
    assert rows[0]["attempts"] == 2


@pytest.mark.parametrize(
    "before",
    [
        "0-0",
        "0-00000000000000000000",
        "99999999999999999999-0",
        "18446744073709551616-0",
        "0-18446744073709551616",
    ],
)
async def test_a_cursor_redis_refuses_is_a_422_problem_not_a_500(stack: Stack, before: str) -> None:
    answer = await dead_letters(stack, stack.admin, before=before)

    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == "validation_error"


async def test_the_extreme_cursors_redis_accepts_page_as_any_other(stack: Stack) -> None:
    poison = await stack.publish(event("payment.captured", {"order_id": "o-1"}))
    await settle(stack)
    everything = await dead_letters(stack, stack.admin)
    from_the_top = await dead_letters(
        stack, stack.admin, before="18446744073709551615-18446744073709551615"
    )
    older_than_the_first = await dead_letters(stack, stack.admin, before="0-1")
    zero_padded = await dead_letters(stack, stack.admin, before="00000000000000000001-0")

    assert from_the_top.status_code == 200, from_the_top.text
    assert [item["event_id"] for item in everything.json()["items"]] == [str(poison.id)]
    assert from_the_top.json() == everything.json()
    assert older_than_the_first.json() == {"items": [], "next_before": None}
    assert zero_padded.json() == {"items": [], "next_before": None}
