"""One checkout is one trace, across services, providers and streams (issue 21).

The platform exports its spans to the OTLP stand-in (``storefront_sandbox.otlp``, what
``make run`` and the tests point ``STOREFRONT_OTLP_ENDPOINT`` at). A customer logs in
through the Telegram stand-in and checks out with a W3C ``traceparent`` of their own;
nginx passes it on. Then the spans that arrived must hang together as one tree: orders'
server span under the caller's; its calls to inventory (each with inventory's server
span under it), to the payment and the shipping providers under it; the outbox relay's
publish spans under it; notifications' and ws-gateway's consumer spans under a publish
span; and the receipt's call to Telegram under notifications' consumer span, its URL
without the bot token.
"""

import asyncio
import re
import secrets
import uuid
from typing import Any

import httpx
import pytest

from storefront_stack.logins import (
    new_chat_id,
    new_phone,
    telegram_login,
    user_token,
    wait_for_message,
)
from storefront_stack.platform import Platform
from storefront_stack.shop import order_body, product_body

pytestmark = pytest.mark.e2e

DEADLINE_S = 45.0


def _url(span: dict[str, Any]) -> str:
    attributes = span["attributes"]
    return str(attributes.get("url.full") or attributes.get("http.url") or "")


async def _trace(client: httpx.AsyncClient, trace_id: str) -> list[dict[str, Any]]:
    response = await client.get("/sandbox/otlp/spans", params={"trace_id": trace_id})
    assert response.status_code == 200, response.text
    spans: list[dict[str, Any]] = response.json()["spans"]
    return spans


def _checkouts(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        s
        for s in spans
        if s["service"] == "orders" and s["kind"] == "SERVER" and s["name"] == "POST /api/v1/orders"
    ]


def _served_calls_arrived(spans: list[dict[str, Any]], service_url: str, at_least: int) -> bool:
    """``at_least`` calls orders made to ``service_url`` arrived, each with the callee's
    span under it.

    The callee exports in batches of its own, so its server spans may arrive after the
    caller's client spans: the test waits for them rather than reading a half trace.
    """
    calls = [
        s
        for s in spans
        if s["service"] == "orders" and s["kind"] == "CLIENT" and _url(s).startswith(service_url)
    ]
    parents = {s["parent_span_id"] for s in spans}
    return len(calls) >= at_least and all(call["span_id"] in parents for call in calls)


def _receipt_sent(spans: list[dict[str, Any]]) -> bool:
    return any(
        s["service"] == "notifications" and s["kind"] == "CLIENT" and "sendMessage" in _url(s)
        for s in spans
    )


async def test_a_checkout_is_one_trace_across_services_providers_and_streams(
    platform: Platform,
) -> None:
    assert platform.endpoints is not None
    endpoints = platform.endpoints
    if not platform.service_env("orders").get("STOREFRONT_OTLP_ENDPOINT"):
        pytest.skip("tracing is off on this platform (STOREFRONT_OTLP_ENDPOINT empty)")
    phone = new_phone()
    chat_id = new_chat_id()
    sku = f"TRACE-{uuid.uuid4().hex[:8].upper()}"
    trace_id = secrets.token_hex(16)
    caller_span = secrets.token_hex(8)

    async with httpx.AsyncClient(base_url=endpoints.gateway_url, timeout=15) as client:
        created = await client.post(
            "/api/v1/admin/products",
            headers={"Authorization": f"Bearer {user_token(platform.platform_env, 'admin')}"},
            json=product_body(sku, name="Traced teapot", price=1999, stock=3),
        )
        assert created.status_code == 201, created.text
        tokens = await telegram_login(client, phone, chat_id, deadline_s=DEADLINE_S)
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
        # Stock reaches orders through inventory directly; the catalog index is not needed.
        ordered = await client.post(
            "/api/v1/orders",
            headers={
                **bearer,
                "Idempotency-Key": str(uuid.uuid4()),
                "traceparent": f"00-{trace_id}-{caller_span}-01",
            },
            json=order_body(sku, token="tok_traced"),
        )
        assert ordered.status_code in (201, 202), ordered.text
        order_id = ordered.json()["id"]
        # The receipt (19.99) reaches the chat, then its spans reach the stand-in. Each
        # service exports in its own batches every few seconds, so orders' spans may come
        # after the consumers', and inventory's after orders' calls to it (waited for too).
        await wait_for_message(client, chat_id, re.compile(r"19\.99"), deadline_s=DEADLINE_S)
        async with asyncio.timeout(DEADLINE_S):
            while True:
                spans = await _trace(client, trace_id)
                consumers = {s["service"] for s in spans if s["name"] == "orders.events process"}
                if (
                    _receipt_sent(spans)
                    and {"notifications", "ws-gateway"} <= consumers
                    and _checkouts(spans)
                    and _served_calls_arrived(spans, endpoints.service_url("inventory"), 2)
                ):
                    break
                await asyncio.sleep(0.5)
        order = await client.get(f"/api/v1/orders/{order_id}", headers=bearer)
        assert order.json()["status"] == "CONFIRMED", order.text

    by_id = {s["span_id"]: s for s in spans}

    def parent(span: dict[str, Any]) -> dict[str, Any]:
        assert span["parent_span_id"] in by_id, ("parent missing", span)
        return by_id[span["parent_span_id"]]

    # orders' server span continues the caller's trace (nginx passed the header on).
    (checkout,) = _checkouts(spans)
    assert checkout["parent_span_id"] == caller_span

    def calls_to(base_url: str) -> list[dict[str, Any]]:
        return [
            s
            for s in spans
            if s["service"] == "orders" and s["kind"] == "CLIENT" and _url(s).startswith(base_url)
        ]

    # inventory: reserve and commit, each answered by inventory's own server span.
    inventory_calls = calls_to(endpoints.service_url("inventory"))
    assert len(inventory_calls) >= 2, [_url(s) for s in inventory_calls]
    for call in inventory_calls:
        assert parent(call) is checkout
        served = [s for s in spans if s["parent_span_id"] == call["span_id"]]
        assert [(s["service"], s["kind"]) for s in served] == [("inventory", "SERVER")]
    # The providers (stand-ins, not traced themselves): orders' client spans.
    for provider in ("payments", "shipping"):
        provider_calls = calls_to(endpoints.sandbox_url(provider))
        assert provider_calls, f"no call to the {provider} provider in the trace"
        assert all(parent(call) is checkout for call in provider_calls)
    # The outbox relay published the checkout's events under its trace...
    publishes = [
        s for s in spans if s["service"] == "orders" and s["name"] == "orders.events publish"
    ]
    assert publishes
    assert all(s["kind"] == "PRODUCER" and parent(s) is checkout for s in publishes)
    # ...and every consumer handled them as children of those publish spans.
    handled = [s for s in spans if s["name"] == "orders.events process"]
    for span in handled:
        assert span["kind"] == "CONSUMER"
        assert parent(span) in publishes
    # The messages (the receipt among them): notifications called Telegram from within
    # its consumer spans, never from anywhere else in the trace.
    messages = [
        s
        for s in spans
        if s["service"] == "notifications" and s["kind"] == "CLIENT" and "sendMessage" in _url(s)
    ]
    assert messages
    for message in messages:
        assert parent(message)["name"] == "orders.events process"
        assert parent(message)["service"] == "notifications"
        assert _url(message).startswith(endpoints.sandbox_url("telegram"))
        assert "development-token" not in _url(message)  # the bot token is scrubbed
    # Personal data stays out of span attributes (phones, the card token).
    assert phone not in str(spans)
    assert "tok_traced" not in str(spans)
