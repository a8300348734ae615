"""The Telegram webhook: secret checked in constant time, /start <token> logs a chat in."""

from typing import Any

from .conftest import WEBHOOK_SECRET, Stack, new_chat_id, problem

HEADER = "X-Telegram-Bot-Api-Secret-Token"


def update(chat_id: int, text: str, update_id: int = 1) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": 1,
            "date": 1760000000,
            "chat": {"id": chat_id, "type": "private", "first_name": "Ann"},
            "from": {"id": chat_id, "is_bot": False, "first_name": "Ann"},
            "text": text,
        },
    }


async def test_webhook_is_registered_with_the_secret_at_start_up(stack: Stack) -> None:
    info = (await stack.sandbox.client.get("/webhook")).json()

    assert info["url"] == f"{stack.url}/api/v1/telegram/webhook"
    assert info["has_secret_token"] is True
    assert info["allowed_updates"] == ["message"]


async def test_webhook_without_the_secret_is_401_and_with_a_wrong_one_403(stack: Stack) -> None:
    chat_id = new_chat_id()
    body = update(chat_id, "/start")

    missing = await stack.client.post("/api/v1/telegram/webhook", json=body)
    wrong = await stack.client.post(
        "/api/v1/telegram/webhook", json=body, headers={HEADER: WEBHOOK_SECRET + "x"}
    )
    right = await stack.client.post(
        "/api/v1/telegram/webhook", json=body, headers={HEADER: WEBHOOK_SECRET}
    )

    problem(missing, 401, "webhook_secret_missing")
    problem(wrong, 403, "webhook_secret_invalid")
    assert right.status_code == 200
    assert right.json() == {"ok": True}
    (welcome,) = await stack.sandbox.wait_messages(chat_id)
    assert "Welcome to <b>Storefront</b>" in welcome["text"]
    assert welcome["parse_mode"] == "HTML"


async def test_webhook_refuses_what_is_not_an_update(stack: Stack) -> None:
    headers = {HEADER: WEBHOOK_SECRET, "Content-Type": "application/json"}

    not_json = await stack.client.post(
        "/api/v1/telegram/webhook", content=b"{nope", headers=headers
    )
    no_update_id = await stack.client.post(
        "/api/v1/telegram/webhook", json={"message": {}}, headers=headers
    )
    a_list = await stack.client.post("/api/v1/telegram/webhook", json=[1, 2], headers=headers)

    assert problem(not_json, 400, "invalid_update")["detail"] == "The body is not JSON."
    problem(no_update_id, 400, "invalid_update")
    problem(a_list, 400, "invalid_update")


async def test_a_redelivered_update_is_answered_once(stack: Stack) -> None:
    chat_id = new_chat_id()
    body = update(chat_id, "hello", update_id=777)
    headers = {HEADER: WEBHOOK_SECRET}

    first = await stack.client.post("/api/v1/telegram/webhook", json=body, headers=headers)
    second = await stack.client.post("/api/v1/telegram/webhook", json=body, headers=headers)

    assert first.status_code == second.status_code == 200
    (reply,) = await stack.sandbox.wait_messages(chat_id)
    assert "I send Storefront login codes" in reply["text"]
    await stack.sandbox.wait_messages(chat_id, 1)
    assert len(await stack.sandbox.messages(chat_id)) == 1


async def test_start_with_a_login_link_reaches_auth_and_the_code_reaches_the_chat(
    stack: Stack,
) -> None:
    """The whole login: send -> deep link -> Start -> code in the chat -> verify -> linked."""
    phone, chat_id = "+15555550123", new_chat_id()
    auth = stack.auth_url
    sent = await stack.client.post(f"{auth}/api/v1/auth/otp/send", json={"phone": phone})
    assert sent.status_code == 202, sent.text
    token = sent.json()["telegram_link"].split("start=", 1)[1]

    delivery = await stack.sandbox.start(chat_id, token)
    messages = await stack.sandbox.wait_messages(chat_id, 2)

    assert delivery["delivered"] is True
    assert delivery["webhook_status"] == 200
    texts = sorted(m["text"] for m in messages)
    assert texts[0] == "This chat is connected. Your login code is on its way."
    assert texts[1].startswith("Your Storefront code: ")
    assert texts[1].split("\n")[0].endswith(" (valid 5 min)")
    code = texts[1].split("code: ", 1)[1][:6]
    assert code.isdigit()
    verified = await stack.client.post(
        f"{auth}/api/v1/auth/otp/verify", json={"phone": phone, "code": code}
    )
    assert verified.status_code == 200, verified.text
    assert verified.json()["token_type"].lower() == "bearer"


async def test_start_with_a_used_or_malformed_link_says_so(stack: Stack) -> None:
    used, malformed = new_chat_id(), new_chat_id()

    await stack.sandbox.start(used, "A" * 32)  # well-formed, unknown to auth
    await stack.sandbox.start(malformed, "short")

    (used_reply,) = await stack.sandbox.wait_messages(used)
    (malformed_reply,) = await stack.sandbox.wait_messages(malformed)
    expected = "This login link has expired or was already used. Request a new code on the site."
    assert used_reply["text"] == expected
    assert malformed_reply["text"] == expected


async def test_start_when_auth_is_down_apologises(start_stack: Any) -> None:
    async with start_stack(auth_url="http://127.0.0.1:1") as stack:
        chat_id = new_chat_id()
        await stack.sandbox.start(chat_id, "B" * 32)
        (reply,) = await stack.sandbox.wait_messages(chat_id)
    assert reply["text"].startswith("Sorry, we could not check your login link right now.")


async def test_failed_webhook_registration_is_retried_in_the_background(
    start_stack: Any, sandbox: Any
) -> None:
    await sandbox.faults(mode="error", operations=["setWebhook"], times=2)

    async with start_stack() as stack:
        info = (await stack.sandbox.client.get("/webhook")).json()
        faults = (await stack.sandbox.client.get("/faults")).json()

    assert faults["injected"] == 2
    assert info["url"] == f"{stack.url}/api/v1/telegram/webhook"


async def test_start_up_does_not_wait_for_telegram(start_stack: Any) -> None:
    async with start_stack(telegram_api_url="http://127.0.0.1:1", wait_for_telegram=False) as stack:
        ready = await stack.client.get("/health/ready")
        registered = stack.app.state.telegram.ready.is_set()

    assert ready.status_code == 200
    assert ready.json()["checks"] == {"postgres": "ok", "redis": "ok", "service_tokens": "ok"}
    assert registered is False
