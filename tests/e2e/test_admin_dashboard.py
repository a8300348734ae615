"""The /admin/ dashboard in real headless Chromium: live alerts, new orders, online users."""

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from playwright.async_api import Page, async_playwright, expect
from redis.asyncio import Redis

from jwt_core_lib import SigningKey, TokenIssuer
from storefront_stack.browsers import CHROMIUM_ARGS, ensure_chromium
from storefront_stack.platform import Platform

pytestmark = pytest.mark.e2e


def _token(platform: Platform, subject: str, *roles: str) -> str:
    env = platform.platform_env
    issuer = TokenIssuer(
        signing_key=SigningKey.from_pem(env["AUTH_JWT_SIGNING_KEY"]), issuer="storefront-auth"
    )
    return issuer.issue(
        subject=subject, audience="storefront", ttl=timedelta(minutes=10), roles=roles
    )


@pytest.fixture
async def page(platform: Platform) -> AsyncIterator[Page]:
    executable = ensure_chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        page = await browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        yield page
        await browser.close()
        assert not errors, f"the dashboard raised JavaScript errors: {errors}"


async def _publish(redis_url: str, message: dict[str, Any]) -> None:
    redis = Redis.from_url(redis_url)
    try:
        await redis.publish("admin.alerts", json.dumps(message))
    finally:
        await redis.aclose()


async def test_admin_sees_live_alerts_new_orders_and_who_is_online(
    platform: Platform, page: Page
) -> None:
    assert platform.endpoints is not None
    await page.goto(f"{platform.endpoints.gateway_url}/admin/")
    await page.fill("#token", _token(platform, "admin-browser", "admin"))
    await page.click("button[type=submit]")
    await expect(page.locator("#status")).to_have_text("Connected", timeout=10_000)
    # The admin's own socket makes them an online user.
    await expect(page.locator("#online")).to_contain_text("admin-browser", timeout=10_000)

    redis_url = platform.endpoints.redis_url
    await _publish(
        redis_url,
        {"type": "order.created", "data": {"order_id": "ord-42", "total": 4998, "currency": "EUR"}},
    )
    await _publish(
        redis_url,
        {"type": "saga.failed", "data": {"order_id": "ord-43", "reason": "payment_declined"}},
    )
    await expect(page.locator("#orders")).to_contain_text("ord-42", timeout=10_000)
    await expect(page.locator("#alerts")).to_contain_text("saga.failed", timeout=10_000)
    await expect(page.locator("#alerts .alert-saga-failed")).to_contain_text("payment_declined")


async def test_a_customer_token_gets_no_admin_alerts(platform: Platform, page: Page) -> None:
    assert platform.endpoints is not None
    await page.goto(f"{platform.endpoints.gateway_url}/admin/")
    await page.fill("#token", _token(platform, "customer-browser", "customer"))
    await page.click("button[type=submit]")
    await expect(page.locator("#status")).to_have_text("Connected", timeout=10_000)
    await _publish(
        platform.endpoints.redis_url, {"type": "saga.failed", "data": {"order_id": "ord-99"}}
    )
    await page.wait_for_timeout(1_000)
    assert await page.locator("#alerts li").count() == 0
    # Presence is staff-only: the list stays empty for a customer.
    assert await page.locator("#online li").count() == 0


async def test_a_forged_token_is_disconnected(platform: Platform, page: Page) -> None:
    assert platform.endpoints is not None
    forged = TokenIssuer(signing_key=SigningKey.generate(), issuer="storefront-auth").issue(
        subject="mallory", audience="storefront", ttl=timedelta(minutes=5), roles=("admin",)
    )
    await page.goto(f"{platform.endpoints.gateway_url}/admin/")
    await page.fill("#token", forged)
    await page.click("button[type=submit]")
    await expect(page.locator("#status")).to_have_text("Disconnected (4401)", timeout=10_000)
