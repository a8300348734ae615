"""The /admin/ page in real headless Chromium against the real platform (issue 21).

The seeded admin logs in through the Telegram stand-in, a customer places orders, and the
page shows them as a shop manager reads them: money formatted by currency, alerts as
readable lines (kind, order, masked customer, time) with their detail on demand, online
users by masked phone; an order opens on its detail (lines, totals, saga steps, payment,
shipment) and the admin moves it to PROCESSING and cancels another with refund from the
page. A moderator sees but cannot act; a customer's, a forged and an expired token get a
clear message; a server that goes away is reconnected to with backoff; a phone-sized
screen (390x844) has no horizontal overflow.

Screenshots are kept as test artifacts: PNGs in ``$ADMIN_SCREENSHOTS`` when set, else
in the test's pytest tmp dir (``<basetemp>/<test name>0/``), named after what they show.
"""

import asyncio
import json
import os
import re
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, ViewportSize, async_playwright, expect
from redis.asyncio import Redis

from jwt_core_lib import SigningKey, TokenIssuer
from storefront_seed.users import DEFAULT_ADMIN_CHAT_ID, DEFAULT_ADMIN_PHONE, create_staff
from storefront_stack.browsers import CHROMIUM_ARGS, ensure_chromium
from storefront_stack.logins import (
    CODE,
    bearer,
    messages,
    telegram_login,
    user_token,
    wait_for_message,
)
from storefront_stack.platform import Platform
from storefront_stack.shop import ADDRESS, create_product, product_body

pytestmark = pytest.mark.e2e

DEADLINE_S = 30.0
UI_TIMEOUT_MS = 15_000
PRICE = 1234  # minor units of EUR: the page must say €12.34
PRICE_TEXT = "€12.34"
DESKTOP = ViewportSize(width=1280, height=900)
PHONE = ViewportSize(width=390, height=844)


def _mask(phone: str) -> str:
    return f"{phone[:3]}•••••{phone[-3:]}"


def _minted(platform: Platform, subject: str, *roles: str, ttl: timedelta) -> str:
    return user_token(platform.platform_env, *roles, subject=subject, ttl=ttl)


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    directory = Path(os.environ.get("ADMIN_SCREENSHOTS") or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    executable = ensure_chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport=DESKTOP, locale="en-US")
    page = await context.new_page()
    errors: list[str] = []
    refused: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    # nginx's CSP (scripts, styles, connections from 'self' only) must refuse nothing.
    page.on(
        "console",
        lambda message: (
            refused.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    yield page
    await context.close()
    assert not errors, f"the dashboard raised JavaScript errors: {errors}"
    assert not refused, f"the page broke its Content-Security-Policy: {refused}"


async def _staff_login(client: httpx.AsyncClient, phone: str, chat_id: int) -> str:
    """A staff user's access token: their chat is linked, so the code goes straight there."""
    before = len(await messages(client, chat_id))
    sent = await client.post("/api/v1/auth/otp/send", json={"phone": phone})
    assert sent.status_code == 202, sent.text
    code = await wait_for_message(client, chat_id, CODE, after=before, deadline_s=DEADLINE_S)
    verified = await client.post("/api/v1/auth/otp/verify", json={"phone": phone, "code": code[1]})
    assert verified.status_code == 200, verified.text
    return str(verified.json()["access_token"])


_logged_in: dict[str, str] = {}  # one login per platform: OTP has a per-phone cooldown


async def _seeded_admin(platform: Platform, client: httpx.AsyncClient) -> str:
    """The seeded admin (``make run``'s), logged in through the Telegram stand-in."""
    assert platform.endpoints is not None
    key = platform.endpoints.gateway_url
    if key not in _logged_in:
        await create_staff(platform, phone=DEFAULT_ADMIN_PHONE, chat_id=DEFAULT_ADMIN_CHAT_ID)
        _logged_in[key] = await _staff_login(client, DEFAULT_ADMIN_PHONE, DEFAULT_ADMIN_CHAT_ID)
    return _logged_in[key]


def _new_phone() -> tuple[str, int]:
    return f"+4915{uuid.uuid4().int % 10**8:08d}", 900_000 + uuid.uuid4().int % 90_000


async def _customer(client: httpx.AsyncClient) -> tuple[str, str]:
    """A new customer, logged in through the Telegram stand-in: phone and access token."""
    phone, chat_id = _new_phone()
    login = await telegram_login(client, phone, chat_id, deadline_s=DEADLINE_S)
    return phone, str(login["access_token"])


async def _product(client: httpx.AsyncClient, admin: str) -> tuple[str, str]:
    sku = f"ADMINUI-{uuid.uuid4().hex[:8].upper()}"
    name = f"Desk lamp {sku[-4:]}"
    body = product_body(sku, name=name, price=PRICE, stock=20, brand="Acme", category="home")
    await create_product(client, bearer(admin), body)
    return sku, name


async def _order(client: httpx.AsyncClient, customer: str, sku: str) -> str:
    ordered = await client.post(
        "/api/v1/orders",
        headers={**bearer(customer), "Idempotency-Key": str(uuid.uuid4())},
        json={
            "items": [{"sku": sku, "qty": 1}],
            "shipping_address": ADDRESS,
            "payment": {"method": "card", "token": "tok_admin_ui"},
        },
    )
    assert ordered.status_code in (201, 202), ordered.text
    return str(ordered.json()["id"])


async def _status(client: httpx.AsyncClient, admin: str, order_id: str) -> dict[str, Any]:
    got = await client.get(f"/api/v1/admin/orders/{order_id}", headers=bearer(admin))
    assert got.status_code == 200, got.text
    body: dict[str, Any] = got.json()
    return body


async def _until_status(
    client: httpx.AsyncClient, admin: str, order_id: str, status: str
) -> dict[str, Any]:
    async with asyncio.timeout(DEADLINE_S):
        while (order := await _status(client, admin, order_id))["status"] != status:
            assert order["status"] not in ("FAILED", "CANCELLED") or status in (
                "FAILED",
                "CANCELLED",
            ), order
            await asyncio.sleep(0.2)
    return order


async def _connect(page: Page, platform: Platform, token: str) -> None:
    assert platform.endpoints is not None
    await page.goto(f"{platform.endpoints.gateway_url}/admin/")
    await page.fill("#token", token)
    await page.click("#login button[type=submit]")


async def _no_horizontal_overflow(page: Page) -> None:
    widths = await page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"the page scrolls sideways: {widths}"


async def _publish(redis_url: str, message: dict[str, Any]) -> None:
    redis = Redis.from_url(redis_url)
    try:
        await redis.publish("admin.alerts", json.dumps(message))
    finally:
        await redis.aclose()


async def test_admin_watches_orders_arrive_opens_one_and_acts_on_it(
    platform: Platform, page: Page, client: httpx.AsyncClient, shots: Path
) -> None:
    assert platform.endpoints is not None
    admin = await _seeded_admin(platform, client)
    sku, name = await _product(client, admin)
    phone, customer = await _customer(client)

    await _connect(page, platform, admin)
    await expect(page.locator("#status")).to_have_text("Connected", timeout=UI_TIMEOUT_MS)
    await expect(page.locator("#who")).to_contain_text("admin")
    # The admin's own socket makes them an online user, shown by masked phone, not UUID.
    await expect(page.locator("#online")).to_contain_text(
        _mask(DEFAULT_ADMIN_PHONE), timeout=UI_TIMEOUT_MS
    )
    assert DEFAULT_ADMIN_PHONE not in await page.locator("#online").inner_text()

    moved_id = await _order(client, customer, sku)
    cancelled_id = await _order(client, customer, sku)

    # Each new order arrives as a readable alert line with formatted money and the masked
    # customer, and in the orders list.
    created = page.locator(
        f'#alerts li[data-type="order.created"]:has(a[data-order-id="{moved_id}"])'
    )
    await expect(created).to_have_count(1, timeout=UI_TIMEOUT_MS)
    await expect(created.locator(".line")).to_contain_text(PRICE_TEXT)
    await expect(created.locator(".line")).to_contain_text(_mask(phone), timeout=UI_TIMEOUT_MS)
    await expect(created.locator(".line")).to_contain_text("New order")
    assert f"{PRICE} EUR" not in await page.locator("#alerts").inner_text()
    # Detail on demand: closed until asked for, then the fields, money still formatted.
    await expect(created.locator("details")).not_to_have_attribute("open", "")
    await created.locator("summary").click()
    await expect(created.locator("details dl")).to_contain_text(name)
    await expect(created.locator("details dl")).to_contain_text(PRICE_TEXT)
    row = page.locator(f'#orders li[data-order-id="{moved_id}"]')
    await expect(row).to_contain_text(PRICE_TEXT, timeout=UI_TIMEOUT_MS)
    # A failed checkout reads as one line; its detail stays inside its card.
    await _publish(
        platform.endpoints.redis_url,
        {
            "type": "saga.failed",
            "occurred_at": "2026-01-02T03:04:05+00:00",
            "data": {
                "order_id": str(uuid.uuid4()),
                "user_id": str(uuid.uuid4()),
                "status": "FAILED",
                "reason": "payment_declined",
                "reason_detail": "card_declined:" + "x" * 300,
                "total": 849,
                "currency": "EUR",
            },
        },
    )
    # Newest first: an alert published after it is listed above it.
    await _publish(
        platform.endpoints.redis_url,
        {"type": "circuit.opened", "data": {"breaker": "shipping", "reset_timeout_s": 30}},
    )
    await expect(page.locator("#alerts li").first).to_have_class(
        re.compile("alert-circuit-opened"), timeout=UI_TIMEOUT_MS
    )
    await expect(page.locator("#alerts li").nth(1)).to_have_class(re.compile("alert-saga-failed"))
    failed = page.locator("#alerts li.alert-saga-failed").first
    await expect(failed.locator(".line")).to_contain_text("Checkout failed", timeout=UI_TIMEOUT_MS)
    await expect(failed.locator(".line")).to_contain_text("payment_declined")
    await expect(failed.locator(".line")).to_contain_text("€8.49")
    await failed.locator("summary").click()
    assert await failed.evaluate("li => li.scrollWidth <= li.clientWidth"), "the alert overflows"

    await _until_status(client, admin, moved_id, "CONFIRMED")
    await _until_status(client, admin, cancelled_id, "CONFIRMED")
    await page.screenshot(path=str(shots / "admin-live.png"), full_page=True)

    # The order's detail: lines, totals, saga steps and outcomes, payment, shipment.
    await row.locator("a.order-link").click()
    detail = page.locator("#order-detail")
    await expect(detail).to_be_visible()
    await expect(page.locator("#detail-title")).to_contain_text(moved_id)
    await expect(page.locator("#detail-status")).to_have_text("CONFIRMED")
    await expect(page.locator("#detail-lines tbody")).to_contain_text(name)
    await expect(page.locator("#detail-total")).to_have_text(PRICE_TEXT)
    order = await _status(client, admin, moved_id)
    steps = page.locator("#detail-steps tbody tr")
    await expect(steps).to_have_count(len(order["steps"]))
    await expect(page.locator('#detail-steps tr[data-step="capture_payment"]')).to_contain_text(
        "succeeded"
    )
    await expect(page.locator("#detail-payment")).to_contain_text(order["payment_id"])
    await expect(page.locator("#detail-shipment")).to_contain_text(order["shipment_id"])
    await page.screenshot(path=str(shots / "admin-order-detail.png"), full_page=True)

    # Only the next staff status is offered; moving it changes the order in the API.
    await expect(page.locator("#act-shipped")).to_be_disabled()
    await page.click("#act-processing")
    await expect(page.locator("#action-message")).to_have_text(
        "Moved to PROCESSING.", timeout=UI_TIMEOUT_MS
    )
    await expect(page.locator("#detail-status")).to_have_text("PROCESSING")
    assert (await _status(client, admin, moved_id))["status"] == "PROCESSING"
    await expect(page.locator("#act-shipped")).to_be_enabled()

    # Cancel another with refund (two clicks: nothing irreversible on a stray tap).
    await page.locator(f'#orders li[data-order-id="{cancelled_id}"] a.order-link').click()
    await expect(page.locator("#detail-title")).to_contain_text(cancelled_id)
    await page.click("#act-cancel")
    await page.click("#act-cancel-confirm")
    await expect(page.locator("#action-message")).to_contain_text(
        "Cancelled with refund", timeout=UI_TIMEOUT_MS
    )
    cancelled = await _until_status(client, admin, cancelled_id, "CANCELLED")
    refund = [s for s in cancelled["steps"] if s["step"] == "refund_payment"]
    assert refund, cancelled["steps"]
    assert refund[-1]["status"] == "succeeded", cancelled["steps"]
    await page.screenshot(path=str(shots / "admin-cancelled.png"), full_page=True)

    # A phone-sized screen shows the same page without sideways scrolling.
    await page.set_viewport_size(PHONE)
    await page.locator(f'#orders li[data-order-id="{moved_id}"] a.order-link').click()
    await expect(page.locator("#detail-status")).to_have_text("PROCESSING")
    await _no_horizontal_overflow(page)
    await page.screenshot(path=str(shots / "admin-phone.png"), full_page=True)


async def test_a_moderator_sees_orders_but_cannot_act(
    platform: Platform, page: Page, client: httpx.AsyncClient, shots: Path
) -> None:
    assert platform.endpoints is not None
    admin = await _seeded_admin(platform, client)
    sku, _ = await _product(client, admin)
    _, customer = await _customer(client)
    mod_phone, mod_chat = _new_phone()
    await create_staff(platform, phone=mod_phone, chat_id=mod_chat, role="moderator")
    moderator = await _staff_login(client, mod_phone, mod_chat)

    await _connect(page, platform, moderator)
    await expect(page.locator("#status")).to_have_text("Connected", timeout=UI_TIMEOUT_MS)
    await expect(page.locator("#who")).to_contain_text("moderator (read only)")
    # Online (so subscribed to the alerts) before the order is placed.
    await expect(page.locator("#online")).to_contain_text(_mask(mod_phone), timeout=UI_TIMEOUT_MS)
    order_id = await _order(client, customer, sku)
    # Moderators get the live alerts too.
    alert = page.locator(f'#alerts a[data-order-id="{order_id}"]')
    await expect(alert).to_have_count(1, timeout=UI_TIMEOUT_MS)
    await _until_status(client, admin, order_id, "CONFIRMED")
    await alert.click()
    await expect(page.locator("#detail-status")).to_have_text("CONFIRMED", timeout=UI_TIMEOUT_MS)
    for button in ("#act-processing", "#act-shipped", "#act-delivered", "#act-cancel"):
        await expect(page.locator(button)).to_be_disabled()
    await expect(page.locator("#actions-note")).to_contain_text("only an admin")
    await page.screenshot(path=str(shots / "moderator-read-only.png"), full_page=True)

    # Even a button forced open is refused by the API, and the page says why.
    await page.evaluate("() => { document.getElementById('act-processing').disabled = false; }")
    await page.click("#act-processing")
    await expect(page.locator("#action-message")).to_contain_text(
        "Not allowed", timeout=UI_TIMEOUT_MS
    )
    assert (await _status(client, admin, order_id))["status"] == "CONFIRMED"


async def test_tokens_that_cannot_use_the_page_get_a_clear_message(
    platform: Platform, page: Page, client: httpx.AsyncClient, shots: Path
) -> None:
    assert platform.endpoints is not None
    _, customer = await _customer(client)
    message = page.locator("#message")

    await _connect(page, platform, customer)
    await expect(message).to_contain_text("not an admin's or a moderator's")
    await expect(page.locator("#status")).to_have_text("Not connected")
    await _publish(platform.endpoints.redis_url, {"type": "saga.failed", "data": {"order_id": "o"}})
    await page.wait_for_timeout(500)
    assert await page.locator("#alerts li").count() == 0
    await page.screenshot(path=str(shots / "customer-token.png"), full_page=True)

    await page.fill("#token", "not-a-token")
    await page.click("#login button[type=submit]")
    await expect(message).to_contain_text("That is not an access token")

    # Expired before it is pasted: said so, no socket opened.
    stale = _minted(platform, "admin-stale", "admin", ttl=timedelta(seconds=1))
    await page.wait_for_timeout(2_100)
    await page.fill("#token", stale)
    await page.click("#login button[type=submit]")
    await expect(message).to_contain_text("This token expired")

    # Signed by someone else: the server closes the socket and the page says why.
    forged = TokenIssuer(signing_key=SigningKey.generate(), issuer="storefront-auth").issue(
        subject="mallory", audience="storefront", ttl=timedelta(minutes=5), roles=("admin",)
    )
    await page.fill("#token", forged)
    await page.click("#login button[type=submit]")
    await expect(page.locator("#status")).to_have_text("Disconnected (4401)", timeout=UI_TIMEOUT_MS)
    await expect(message).to_contain_text("The server refused this token")

    # Expiring on an open socket: the server closes it, the page asks for a fresh login.
    short = _minted(platform, "admin-short", "admin", ttl=timedelta(seconds=3))
    await page.fill("#token", short)
    await page.click("#login button[type=submit]")
    await expect(page.locator("#status")).to_have_text("Connected", timeout=UI_TIMEOUT_MS)
    await expect(page.locator("#status")).to_have_text("Disconnected (4401)", timeout=UI_TIMEOUT_MS)
    await expect(message).to_contain_text("Your session expired")
    await page.set_viewport_size(PHONE)
    await _no_horizontal_overflow(page)
    await page.screenshot(path=str(shots / "expired-phone.png"), full_page=True)


async def test_the_page_reconnects_by_itself_when_the_server_goes_away(
    platform: Platform, page: Page, shots: Path
) -> None:
    token = _minted(platform, "admin-reconnect", "admin", ttl=timedelta(minutes=10))
    await _connect(page, platform, token)
    status = page.locator("#status")
    await expect(status).to_have_text("Connected", timeout=UI_TIMEOUT_MS)

    names = platform.replica_names("ws-gateway")
    await asyncio.to_thread(platform.stop_service, "ws-gateway")
    try:
        await expect(status).to_contain_text("Reconnecting", timeout=UI_TIMEOUT_MS)
        await page.screenshot(path=str(shots / "reconnecting.png"), full_page=True)
    finally:
        for name in names:
            await asyncio.to_thread(platform.start_service, name)
    await expect(status).to_have_text("Connected", timeout=60_000)
    # And it works again: alerts arrive (published until the new socket has subscribed).
    assert platform.endpoints is not None
    arrived = page.locator("#alerts li.alert-circuit-opened")
    async with asyncio.timeout(DEADLINE_S):
        while not await arrived.count():
            await _publish(
                platform.endpoints.redis_url,
                {"type": "circuit.opened", "data": {"breaker": "payments", "reset_timeout_s": 30}},
            )
            await asyncio.sleep(0.5)
    await expect(arrived.first).to_contain_text("provider: payments")
