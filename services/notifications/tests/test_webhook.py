"""The Telegram webhook: secret checked in constant time; /start <token> asks for the
contact, and only the sender's own contact with the link's number logs a chat in."""

from typing import Any

import pytest

from auth_service import repository as auth_repository
from auth_service.fields import phone_key
from notifications_service.domain import templates
from storefront_kit.db import create_sessionmaker

from .conftest import WEBHOOK_SECRET, Stack, new_chat_id, new_phone, problem

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


async def _login_link(stack: Stack, phone: str) -> str:
    sent = await stack.client.post(f"{stack.auth_url}/api/v1/auth/otp/send", json={"phone": phone})
    assert sent.status_code == 202, sent.text
    token: str = sent.json()["telegram_link"].split("start=", 1)[1]
    return token


def _is_contact_keyboard(markup: dict[str, Any] | None) -> bool:
    return markup == {
        "keyboard": [[{"text": templates.CONTACT_BUTTON, "request_contact": True}]],
        "one_time_keyboard": True,
        "resize_keyboard": True,
        "input_field_placeholder": "Tap the button to share your number",
    }


async def _user_chat(stack: Stack, phone: str) -> Any:
    """The chat auth linked to ``phone`` (through auth's repository: it is stored encrypted)."""
    async with create_sessionmaker(stack.auth_engine)() as session:
        user = await auth_repository.get_user_by_phone(session, phone)
        return None if user is None else user.telegram_chat_id


async def test_start_asks_for_the_contact_and_the_own_contact_brings_the_code(
    stack: Stack,
) -> None:
    """The whole login: send -> deep link -> Start -> contact keyboard -> own contact ->
    keyboard removed, code in the chat -> verify -> linked."""
    phone, chat_id = new_phone(), new_chat_id()
    token = await _login_link(stack, phone)

    delivery = await stack.sandbox.start(chat_id, token)
    (asked,) = await stack.sandbox.wait_messages(chat_id, 1)
    shared = await stack.sandbox.contact(chat_id, phone.removeprefix("+"))
    messages = await stack.sandbox.wait_messages(chat_id, 3)

    assert delivery["delivered"] is True
    assert delivery["webhook_status"] == 200
    assert "Share my phone number" in asked["text"]
    assert _is_contact_keyboard(asked["reply_markup"])
    assert shared["delivered"] is True
    # the confirmation and the code are sent independently: either may come first
    (confirmed,) = [m for m in messages[1:] if m["text"].startswith("Thanks, your number")]
    (code_message,) = [m for m in messages[1:] if m["text"].startswith("Your Storefront code")]
    assert confirmed["reply_markup"] == {"remove_keyboard": True}
    assert code_message["text"].split("\n")[0].endswith(" (valid 5 min)")
    code = code_message["text"].split("code: ", 1)[1][:6]
    assert code.isdigit()
    verified = await stack.client.post(
        f"{stack.auth_url}/api/v1/auth/otp/verify", json={"phone": phone, "code": code}
    )
    assert verified.status_code == 200, verified.text
    assert verified.json()["token_type"].lower() == "bearer"
    assert await _user_chat(stack, phone) == chat_id


@pytest.mark.parametrize(
    ("label", "reply", "expected"),
    [
        ("someone else's card", {"user_id": 4242}, "That is not your own contact"),
        ("a card of no Telegram user", {"user_id": None}, "That is not your own contact"),
        ("a typed number", {"typed": True}, "typed numbers and other messages are not accepted"),
        ("a huge typed reply", {"typed": "9" * 4096}, "typed numbers and other messages"),
        ("a non-E.164 number", {"phone_number": "0049 (30) x"}, "could not read that phone"),
        ("another number", {"phone_number": "15550001111"}, "not the number you entered"),
    ],
)
async def test_replies_that_do_not_prove_the_number_get_a_clear_answer_and_link_nothing(
    stack: Stack, label: str, reply: dict[str, Any], expected: str
) -> None:
    phone, chat_id = new_phone(), new_chat_id()
    await stack.sandbox.start(chat_id, await _login_link(stack, phone))
    await stack.sandbox.wait_messages(chat_id, 1)

    typed = reply.pop("typed", None)
    if typed:
        await stack.sandbox.send(chat_id, phone if typed is True else typed)
    else:
        await stack.sandbox.contact(
            chat_id, reply.pop("phone_number", phone.removeprefix("+")), **reply
        )
    messages = await stack.sandbox.wait_messages(chat_id, 2)

    assert len(messages) == 2, label
    assert expected in messages[1]["text"], label
    assert "(2 attempts left)" in messages[1]["text"], label
    assert "Your Storefront code" not in messages[1]["text"]
    assert await _user_chat(stack, phone) is None
    assert (
        await stack.redis.exists(
            f"auth:otp:code:{phone_key(phone)}", f"auth:tg:temp:{phone_key(phone)}"
        )
        == 0
    )


async def test_three_bad_replies_burn_the_link_and_remove_the_keyboard(stack: Stack) -> None:
    phone, chat_id = new_phone(), new_chat_id()
    await stack.sandbox.start(chat_id, await _login_link(stack, phone))
    await stack.sandbox.wait_messages(chat_id, 1)

    for count, card in ((2, {"user_id": 1}), (3, {"user_id": 2}), (4, {"user_id": 3})):
        await stack.sandbox.contact(chat_id, phone, **card)
        await stack.sandbox.wait_messages(chat_id, count)
    await stack.sandbox.contact(chat_id, phone)  # the real proof, too late
    messages = await stack.sandbox.wait_messages(chat_id, 5)

    burned, late = messages[3], messages[4]
    assert burned["text"].startswith("Too many failed attempts")
    assert burned["reply_markup"] == {"remove_keyboard": True}
    assert late["text"].startswith("There is no login waiting in this chat")
    assert await _user_chat(stack, phone) is None
    assert await stack.redis.exists(f"auth:otp:code:{phone_key(phone)}") == 0


async def test_a_contact_with_no_login_in_progress_links_nothing(stack: Stack) -> None:
    chat_id = new_chat_id()

    await stack.sandbox.contact(chat_id, "15550001234")
    (reply,) = await stack.sandbox.wait_messages(chat_id)

    assert reply["text"].startswith("There is no login waiting in this chat")
    assert await stack.redis.exists(f"auth:otp:code:{phone_key('+15550001234')}") == 0


async def test_a_forwarded_link_is_refused_in_the_second_chat(stack: Stack) -> None:
    phone, owner, other = new_phone(), new_chat_id(), new_chat_id()
    token = await _login_link(stack, phone)
    await stack.sandbox.start(owner, token)
    await stack.sandbox.wait_messages(owner, 1)

    await stack.sandbox.start(other, token)
    await stack.sandbox.contact(other, phone.removeprefix("+"))
    replies = await stack.sandbox.wait_messages(other, 2)

    assert replies[0]["text"].startswith("This login link has expired or was already used")
    assert replies[1]["text"].startswith("There is no login waiting in this chat")
    assert await _user_chat(stack, phone) is None


async def test_a_callback_is_answered_and_changes_nothing(stack: Stack) -> None:
    chat_id = new_chat_id()
    body = {
        "update_id": 4711,
        "callback_query": {
            "id": "1234567890",
            "from": {"id": chat_id, "is_bot": False, "first_name": "Ann"},
            "chat_instance": "1",
            "data": "A" * 32,
        },
    }

    answered = await stack.client.post(
        "/api/v1/telegram/webhook", json=body, headers={HEADER: WEBHOOK_SECRET}
    )

    assert answered.status_code == 200
    assert await stack.sandbox.messages(chat_id) == []


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
        registered = stack.state.telegram.ready.is_set()

    assert ready.status_code == 200
    assert ready.json()["checks"] == {"postgres": "ok", "redis": "ok", "service_tokens": "ok"}
    assert registered is False


async def test_malformed_or_huge_contacts_are_refused_and_link_nothing(stack: Stack) -> None:
    phone, chat_id = new_phone(), new_chat_id()
    await stack.sandbox.start(chat_id, await _login_link(stack, phone))
    await stack.sandbox.wait_messages(chat_id, 1)
    headers = {HEADER: WEBHOOK_SECRET}
    no_number = update(chat_id, "", update_id=9001)
    del no_number["message"]["text"]
    no_number["message"]["contact"] = {"first_name": "Ann", "user_id": chat_id}
    huge = update(chat_id, "", update_id=9002)
    del huge["message"]["text"]
    huge["message"]["contact"] = {
        "phone_number": phone.removeprefix("+") * 1000,
        "first_name": "Ann",
        "user_id": chat_id,
    }

    malformed = await stack.client.post("/api/v1/telegram/webhook", json=no_number, headers=headers)
    accepted = await stack.client.post("/api/v1/telegram/webhook", json=huge, headers=headers)
    messages = await stack.sandbox.wait_messages(chat_id, 2)

    problem(malformed, 400, "invalid_update")
    assert accepted.status_code == 200
    assert len(messages) == 2  # one answer: the malformed update never reached the bot
    assert messages[1]["text"].startswith("We could not read that phone number")
    assert await _user_chat(stack, phone) is None
    assert await stack.redis.exists(f"auth:otp:code:{phone_key(phone)}") == 0
