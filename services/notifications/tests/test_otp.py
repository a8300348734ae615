"""``POST /internal/notifications/otp``: auth only, 202 at once, delivered with retries."""

import asyncio
import time
from datetime import timedelta
from typing import Any

import pytest

from jwt_core_lib import TokenIssuer

from .conftest import BOT_TOKEN, Stack, bearer, new_chat_id, problem

OTP = "/internal/notifications/otp"


def body(chat_id: int | None, code: str = "123456") -> dict[str, Any]:
    return {"phone": "+15555550100", "code": code, "chat_id": chat_id}


async def test_auth_gets_a_202_and_the_code_arrives_in_the_chat(stack: Stack) -> None:
    chat_id = new_chat_id()

    response = await stack.client.post(
        OTP, json=body(chat_id, "654321"), headers=bearer(stack.keys.service_token("auth"))
    )

    assert response.status_code == 202
    assert response.json() == {"status": "queued", "reason": None}
    (message,) = await stack.sandbox.wait_messages(chat_id)
    assert message["text"] == (
        "Your Storefront code: 654321 (valid 5 min)\n"
        "Never share it: Storefront staff will never ask you for it."
    )


async def test_only_auth_with_a_service_token_for_notifications_may_send_codes(
    stack: Stack,
) -> None:
    chat_id = new_chat_id()
    keys = stack.keys

    no_token = await stack.client.post(OTP, json=body(chat_id))
    user = await stack.client.post(
        OTP, json=body(chat_id), headers=bearer(keys.user_token("admin"))
    )
    other_audience = await stack.client.post(
        OTP, json=body(chat_id), headers=bearer(keys.service_token("auth", audience="orders"))
    )
    other_caller = await stack.client.post(
        OTP, json=body(chat_id), headers=bearer(keys.service_token("orders"))
    )

    # Signed with auth's service key, right audience, but an access token, not a service token.
    access_like = TokenIssuer(signing_key=keys.services["auth"], issuer="auth").issue(
        subject="auth", audience="notifications", ttl=timedelta(minutes=1), roles=("admin",)
    )
    not_service = await stack.client.post(OTP, json=body(chat_id), headers=bearer(access_like))

    problem(no_token, 401, "not_authenticated")
    problem(user, 401, "invalid_token")
    assert problem(not_service, 401, "invalid_token")["detail"]
    assert problem(other_audience, 401, "invalid_token")["detail"] == (
        "The token is for another audience."
    )
    detail = problem(other_caller, 403, "caller_not_allowed")["detail"]
    assert detail == "Service 'orders' may not call this route."
    await asyncio.sleep(0.2)
    assert await stack.sandbox.messages(chat_id) == []


async def test_malformed_requests_are_422_and_no_chat_is_skipped(stack: Stack) -> None:
    auth = bearer(stack.keys.service_token("auth"))

    bad_code = await stack.client.post(OTP, json=body(1, code="12ab56"), headers=auth)
    unknown_field = await stack.client.post(OTP, json={**body(1), "ttl": 5}, headers=auth)
    no_chat = await stack.client.post(OTP, json=body(None), headers=auth)

    problem(bad_code, 422, "validation_error")
    problem(unknown_field, 422, "validation_error")
    assert no_chat.status_code == 202
    assert no_chat.json() == {"status": "skipped", "reason": "no_chat"}


async def test_a_429_is_retried_after_the_retry_after_telegram_gave(stack: Stack) -> None:
    chat_id = new_chat_id()
    await stack.sandbox.faults(mode="flood", retry_after=1, times=1)

    started = time.monotonic()
    response = await stack.client.post(
        OTP, json=body(chat_id), headers=bearer(stack.keys.service_token("auth"))
    )
    (message,) = await stack.sandbox.wait_messages(chat_id, timeout=5)
    elapsed = time.monotonic() - started

    assert response.status_code == 202
    assert message["text"].startswith("Your Storefront code: 123456")
    assert elapsed >= 1.0  # waited what Telegram asked, not the (10 ms) back-off
    faults = (await stack.sandbox.client.get("/faults")).json()
    assert faults["injected"] == 1


async def test_transient_errors_back_off_then_give_up_without_logging_the_code(
    start_stack: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    async with start_stack(telegram_send_attempts=3) as stack:
        chat_id = new_chat_id()
        await stack.sandbox.faults(mode="error", error_status=502)

        response = await stack.client.post(
            OTP, json=body(chat_id, "987123"), headers=bearer(stack.keys.service_token("auth"))
        )

        async def gave_up() -> bool:
            faults = (await stack.sandbox.client.get("/faults")).json()
            return bool(faults["injected"] == 3 and len(stack.state.tasks) == 0)

        deadline = asyncio.get_running_loop().time() + 5
        while not await gave_up():
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.02)
        logs = capsys.readouterr().out

    assert response.status_code == 202
    assert await stack.sandbox.messages(chat_id) == []
    failure = [line for line in logs.splitlines() if "otp_delivery_failed" in line]
    assert len(failure) == 1, logs
    assert str(chat_id) in failure[0]
    assert "NetworkError" in failure[0]
    assert "987123" not in logs
    assert BOT_TOKEN.split(":")[1] not in logs  # Bot API URLs carry the token
