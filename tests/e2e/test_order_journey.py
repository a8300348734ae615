"""One customer's journey through the gateway, every hop real (issue 7, how it is checked).

Login by phone through the Telegram stand-in (deep link, Start, the own contact shared,
code in the chat),
checkout, the confirmation and the receipt in the chat, an admin moving the order to
SHIPPED, the shipped message with its tracking number in the chat and the status pushes
on the customer's WebSocket; admins get the new order on ``admin.alerts``.
"""

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import websockets
from redis.asyncio import Redis
from websockets.typing import Subprotocol

from storefront_stack.logins import new_phone, telegram_login, user_token
from storefront_stack.platform import Platform
from storefront_stack.shop import create_product, order_body, product_body

pytestmark = pytest.mark.e2e

DEADLINE_S = 30.0


async def _messages(client: httpx.AsyncClient, chat_id: int) -> list[str]:
    response = await client.get("/sandbox/telegram/messages", params={"chat_id": chat_id})
    assert response.status_code == 200, response.text
    return [message["text"] for message in response.json()]


async def _wait_for_message(
    client: httpx.AsyncClient, chat_id: int, matches: Callable[[str], bool]
) -> str:
    """The first message the bot sent to ``chat_id`` that ``matches`` (polls to a deadline)."""
    async with asyncio.timeout(DEADLINE_S):
        while True:
            for text in await _messages(client, chat_id):
                if matches(text):
                    return text
            await asyncio.sleep(0.2)


async def _next_status(socket: websockets.ClientConnection, order_id: str, status: str) -> None:
    """Read pushes until one says ``order_id`` reached ``status``."""
    async with asyncio.timeout(DEADLINE_S):
        while True:
            message = json.loads(await socket.recv())
            data = message.get("data", {})
            if data.get("order_id") == order_id and data.get("status") == status:
                return


async def test_login_checkout_receipt_shipping_and_live_pushes(platform: Platform) -> None:
    assert platform.endpoints is not None
    gateway = platform.endpoints.gateway_url
    phone = new_phone()
    chat_id = 700_000 + uuid.uuid4().int % 100_000
    admin = {"Authorization": f"Bearer {user_token(platform.platform_env, 'admin')}"}
    sku = f"JOURNEY-{uuid.uuid4().hex[:8].upper()}"

    async with (
        httpx.AsyncClient(base_url=gateway, timeout=15) as client,
        Redis.from_url(platform.endpoints.redis_url) as redis,
    ):
        await create_product(
            client, admin, product_body(sku, name="Kettle <Deluxe> & Co", price=2599, stock=5)
        )

        tokens = await telegram_login(client, phone, chat_id, deadline_s=DEADLINE_S)
        access = tokens["access_token"]
        me = await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {access}"})
        assert me.status_code == 200, me.text
        assert me.json()["phone"] == phone
        customer_id = me.json()["id"]

        alerts = redis.pubsub()
        await alerts.subscribe("admin.alerts")
        ws_url = gateway.replace("http://", "ws://", 1) + "/ws"
        async with websockets.connect(
            ws_url, subprotocols=[Subprotocol("bearer"), Subprotocol(access)]
        ) as socket:
            welcome = json.loads(await socket.recv())
            assert (welcome["type"], welcome["user_id"]) == ("welcome", customer_id)

            ordered = await client.post(
                "/api/v1/orders",
                headers={"Authorization": f"Bearer {access}", "Idempotency-Key": str(uuid.uuid4())},
                json=order_body(sku, token="tok_journey", qty=2),
            )
            assert ordered.status_code in (201, 202), ordered.text
            order_id = ordered.json()["id"]
            await _next_status(socket, order_id, "CONFIRMED")

            order = (
                await client.get(
                    f"/api/v1/orders/{order_id}", headers={"Authorization": f"Bearer {access}"}
                )
            ).json()
            assert (order["status"], order["total"], order["currency"]) == (
                "CONFIRMED",
                5198,
                "EUR",
            )
            tracking = order["tracking_number"]
            assert tracking

            # The receipt names the line (escaped for Telegram's HTML), quantities and total.
            receipt = await _wait_for_message(client, chat_id, lambda t: "51.98" in t)
            assert "Kettle &lt;Deluxe&gt; &amp; Co" in receipt or "Kettle <Deluxe> & Co" in receipt
            assert "2" in receipt

            for status in ("PROCESSING", "SHIPPED"):
                moved = await client.post(
                    f"/api/v1/admin/orders/{order_id}/status",
                    headers=admin,
                    json={"status": status},
                )
                assert moved.status_code == 200, moved.text
                assert moved.json()["status"] == status
                await _next_status(socket, order_id, status)

            shipped = await _wait_for_message(client, chat_id, lambda t: tracking in t)
            assert "shipped" in shipped.lower()

        # Admins heard about the new order (pub/sub: read what arrived while we ran).
        seen: list[dict[str, Any]] = []
        async with asyncio.timeout(DEADLINE_S):
            while not any(
                a["type"] == "order.created" and a["data"].get("order_id") == order_id for a in seen
            ):
                message = await alerts.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None:
                    seen.append(json.loads(message["data"]))
        await alerts.aclose()

        # Every message went to the customer's own chat exactly once per event.
        texts = await _messages(client, chat_id)
        assert sum(tracking in text for text in texts) == 1
