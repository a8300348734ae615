"""The Telegram stand-in over HTTP, in process: the Bot API's shapes and the dev endpoints."""

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from storefront_sandbox import telegram
from storefront_sandbox.settings import SandboxSettings

TOKEN = "123456789:AAH-sandbox_token_for_tests_0123456789"
BOT = f"/bot{TOKEN}"
HOOK = "http://receiver/hook"


class Receiver:
    """A webhook that records what it is sent and answers as told."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.status = 200
        self.reply: dict[str, Any] | None = None

    async def hook(self, request: Request) -> Response:
        self.received.append((dict(request.headers), await request.json()))
        if self.reply is not None:
            return JSONResponse(self.reply, status_code=self.status)
        return Response(status_code=self.status)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/hook", self.hook, methods=["POST"])])


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
async def tg(receiver: Receiver) -> AsyncIterator[httpx.AsyncClient]:
    app = telegram.create_app(
        SandboxSettings(), webhook_transport=httpx.ASGITransport(app=receiver.app())
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://telegram"
    ) as client:
        yield client


async def call(client: httpx.AsyncClient, method: str, **params: Any) -> httpx.Response:
    return await client.post(f"{BOT}/{method}", json=params)


async def set_webhook(client: httpx.AsyncClient, **extra: Any) -> None:
    response = await call(client, "setWebhook", url=HOOK, secret_token="s3cret_token", **extra)
    assert response.json() == {"ok": True, "result": True, "description": "Webhook was set"}


async def test_health(tg: httpx.AsyncClient) -> None:
    assert (await tg.get("/health/live")).json() == {"status": "ok"}
    assert (await tg.get("/health/ready")).json() == {"status": "ok"}


async def test_get_me_describes_the_bot_of_the_token(tg: httpx.AsyncClient) -> None:
    response = await tg.get(f"{BOT}/getMe")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True
    assert body["result"]["id"] == 123456789
    assert body["result"]["is_bot"] is True
    assert body["result"]["username"] == "storefront_sandbox_bot"


async def test_unknown_method_is_telegrams_404(tg: httpx.AsyncClient) -> None:
    response = await call(tg, "launchRockets")
    assert response.status_code == 404
    assert response.json() == {
        "ok": False,
        "error_code": 404,
        "description": "Not Found: method not found",
    }


@pytest.mark.parametrize("token", ["nonsense", "abc:def", "123456:", "123:has space"])
async def test_malformed_token_is_unauthorized(tg: httpx.AsyncClient, token: str) -> None:
    response = await tg.post(f"/bot{token}/getMe")
    assert response.status_code == 401
    assert response.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}


async def test_configured_token_is_the_only_one_accepted() -> None:
    app = telegram.create_app(SandboxSettings(telegram_token=TOKEN))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        assert (await client.post(f"{BOT}/getMe")).json()["ok"] is True
        other = await client.post("/bot42:other_token/getMe")
        assert other.status_code == 401
        assert other.json()["description"] == "Unauthorized"


async def test_method_names_are_case_insensitive(tg: httpx.AsyncClient) -> None:
    response = await tg.get(f"{BOT}/getme")
    assert response.json()["result"]["id"] == 123456789


async def test_send_message_returns_a_message_and_records_it(tg: httpx.AsyncClient) -> None:
    markup = {"inline_keyboard": [[{"text": "Open", "callback_data": "open"}]]}
    response = await call(
        tg, "sendMessage", chat_id=42, text="<b>Hi</b>", parse_mode="HTML", reply_markup=markup
    )
    assert response.status_code == 200
    result = response.json()["result"]
    assert result["message_id"] == 1
    assert result["chat"] == {"id": 42, "type": "private", "first_name": "User"}
    assert result["from"]["is_bot"] is True
    assert result["text"] == "<b>Hi</b>"
    assert result["reply_markup"] == markup
    assert isinstance(result["date"], int)
    listed = (await tg.get("/messages", params={"chat_id": 42})).json()
    assert listed == [
        {
            "message_id": 1,
            "chat_id": 42,
            "text": "<b>Hi</b>",
            "parse_mode": "HTML",
            "date": result["date"],
            "reply_markup": markup,
            "edit_date": None,
        }
    ]


async def test_form_multipart_and_query_parameters_are_understood(tg: httpx.AsyncClient) -> None:
    markup = {"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]}
    form = await tg.post(
        f"{BOT}/sendMessage",
        data={"chat_id": "7", "text": "form", "reply_markup": json.dumps(markup)},
    )
    multipart = await tg.post(
        f"{BOT}/sendMessage",
        data={"chat_id": "7", "text": "multipart", "parse_mode": "MarkdownV2"},
        files={"certificate": ("cert.pem", b"not used", "application/octet-stream")},
    )
    query = await tg.get(f"{BOT}/sendMessage", params={"chat_id": 7, "text": "query"})
    assert form.json()["result"]["reply_markup"] == markup
    assert multipart.json()["result"]["text"] == "multipart"
    assert query.json()["result"]["message_id"] == 3
    listed = (await tg.get("/messages", params={"chat_id": 7})).json()
    assert [(m["text"], m["parse_mode"]) for m in listed] == [
        ("form", None),
        ("multipart", "MarkdownV2"),
        ("query", None),
    ]


@pytest.mark.parametrize(
    ("params", "description"),
    [
        ({"chat_id": 1, "text": ""}, "Bad Request: message text is empty"),
        ({"chat_id": 1}, "Bad Request: message text is empty"),
        ({"text": "hi"}, "Bad Request: chat_id is empty"),
        ({"chat_id": "@somebody", "text": "hi"}, "Bad Request: chat not found"),
        ({"chat_id": 1, "text": "x" * 4097}, "Bad Request: message is too long"),
        ({"chat_id": 1, "text": "hi", "parse_mode": "RTF"}, "Bad Request: unsupported parse_mode"),
    ],
)
async def test_bad_send_message_is_a_400_in_telegrams_words(
    tg: httpx.AsyncClient, params: dict[str, Any], description: str
) -> None:
    response = await tg.post(f"{BOT}/sendMessage", json=params)
    assert response.status_code == 400
    assert response.json() == {"ok": False, "error_code": 400, "description": description}


@pytest.mark.parametrize(
    ("text", "parse_mode", "fragment"),
    [
        ("Your code is 123456.", "MarkdownV2", "Character '.' is reserved"),
        ("*bold", "MarkdownV2", "Can't find end of Bold entity"),
        ("<b>open", "HTML", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<br>", "HTML", 'Unsupported start tag "br"'),
        ("a &nbsp; b", "HTML", "Unsupported HTML entity"),
        ("*bold", "Markdown", "Can't find end of the entity"),
    ],
)
async def test_unparseable_markup_is_refused_as_telegram_does(
    tg: httpx.AsyncClient, text: str, parse_mode: str, fragment: str
) -> None:
    response = await call(tg, "sendMessage", chat_id=1, text=text, parse_mode=parse_mode)
    assert response.status_code == 400
    assert response.json()["description"].startswith("Bad Request: can't parse entities: ")
    assert fragment in response.json()["description"]
    assert (await tg.get("/messages", params={"chat_id": 1})).json() == []


@pytest.mark.parametrize(
    ("text", "parse_mode"),
    [
        (r"Your code is *123456*\. Valid for 5 min\!", "MarkdownV2"),
        ("[site](https://example.com/a-b.c) `x.y` ||spoiler||\n>quote", "MarkdownV2"),
        ('<b>1 &lt; 2</b> <a href="https://x.y">x</a> <span class="tg-spoiler">s</span>', "HTML"),
        ("*bold* _it_ `co*de`", "Markdown"),
    ],
)
async def test_well_formed_markup_is_accepted(
    tg: httpx.AsyncClient, text: str, parse_mode: str
) -> None:
    response = await call(tg, "sendMessage", chat_id=1, text=text, parse_mode=parse_mode)
    assert response.json()["ok"] is True
    assert response.json()["result"]["text"] == text


async def test_edit_message_text_changes_the_record(tg: httpx.AsyncClient) -> None:
    await call(tg, "sendMessage", chat_id=5, text="first")
    edited = await call(tg, "editMessageText", chat_id=5, message_id=1, text="second")
    assert edited.json()["result"]["text"] == "second"
    assert isinstance(edited.json()["result"]["edit_date"], int)
    same = await call(tg, "editMessageText", chat_id=5, message_id=1, text="second")
    assert same.status_code == 400
    assert same.json()["description"].startswith("Bad Request: message is not modified")
    missing = await call(tg, "editMessageText", chat_id=5, message_id=99, text="x")
    assert missing.json()["description"] == "Bad Request: message to edit not found"
    listed = (await tg.get("/messages", params={"chat_id": 5})).json()
    assert [m["text"] for m in listed] == ["second"]
    assert listed[0]["edit_date"] is not None


async def test_delete_message_removes_it(tg: httpx.AsyncClient) -> None:
    await call(tg, "sendMessage", chat_id=5, text="one")
    await call(tg, "sendMessage", chat_id=5, text="two")
    deleted = await call(tg, "deleteMessage", chat_id=5, message_id=1)
    assert deleted.json() == {"ok": True, "result": True}
    again = await call(tg, "deleteMessage", chat_id=5, message_id=1)
    assert again.status_code == 400
    assert again.json()["description"] == "Bad Request: message to delete not found"
    assert [m["text"] for m in (await tg.get("/messages", params={"chat_id": 5})).json()] == ["two"]


async def test_webhook_set_info_and_delete(tg: httpx.AsyncClient) -> None:
    await set_webhook(tg, allowed_updates=["message", "callback_query"], max_connections=10)
    info = (await call(tg, "getWebhookInfo")).json()["result"]
    assert info == {
        "url": HOOK,
        "has_custom_certificate": False,
        "pending_update_count": 0,
        "max_connections": 10,
        "allowed_updates": ["message", "callback_query"],
    }
    dev_view = (await tg.get("/webhook")).json()
    assert dev_view["url"] == HOOK
    assert dev_view["has_secret_token"] is True
    deleted = await call(tg, "deleteWebhook")
    assert deleted.json() == {"ok": True, "result": True, "description": "Webhook was deleted"}
    assert (await call(tg, "getWebhookInfo")).json()["result"]["url"] == ""


async def test_webhook_secret_with_bad_characters_is_refused(tg: httpx.AsyncClient) -> None:
    response = await call(tg, "setWebhook", url=HOOK, secret_token="no spaces!")
    assert response.status_code == 400
    assert response.json()["description"] == (
        "Bad Request: secret token contains unallowed characters"
    )


async def test_commands_are_set_per_scope(tg: httpx.AsyncClient) -> None:
    commands = [{"command": "start", "description": "Link this chat"}]
    assert (await call(tg, "setMyCommands", commands=commands)).json()["result"] is True
    assert (await call(tg, "getMyCommands")).json()["result"] == commands
    bad = await call(tg, "setMyCommands", commands=[{"command": "Start!", "description": "x"}])
    assert bad.json()["description"] == "Bad Request: BOT_COMMAND_INVALID"


async def test_chat_action(tg: httpx.AsyncClient) -> None:
    assert (await call(tg, "sendChatAction", chat_id=1, action="typing")).json()["result"] is True
    bad = await call(tg, "sendChatAction", chat_id=1, action="dancing")
    assert bad.status_code == 400
    assert bad.json()["description"] == "Bad Request: wrong parameter action in request"


async def test_start_posts_an_update_with_the_secret_header(
    tg: httpx.AsyncClient, receiver: Receiver
) -> None:
    await set_webhook(tg)
    first = await tg.post("/start", json={"chat_id": 555, "payload": "abc"})
    second = await tg.post("/start", json={"chat_id": 555, "payload": "def"})
    assert first.status_code == 200
    body = first.json()
    assert body["delivered"] is True
    assert body["webhook_status"] == 200
    assert second.json()["update_id"] == body["update_id"] + 1
    headers, update = receiver.received[0]
    assert headers["x-telegram-bot-api-secret-token"] == "s3cret_token"
    assert update["update_id"] == body["update_id"]
    message = update["message"]
    assert message["text"] == "/start abc"
    assert message["entities"] == [{"type": "bot_command", "offset": 0, "length": 6}]
    assert message["chat"] == {"id": 555, "type": "private", "first_name": "Sandbox"}
    assert message["from"]["id"] == 555
    assert message["from"]["is_bot"] is False
    assert message["message_id"] == 1
    assert receiver.received[1][1]["message"]["message_id"] == 2


async def test_start_without_a_webhook_is_a_409_problem(tg: httpx.AsyncClient) -> None:
    response = await tg.post("/start", json={"chat_id": 1, "payload": "abc"})
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "webhook_not_set"


@pytest.mark.parametrize(
    "body",
    [
        {"chat_id": 1, "payload": "has space"},
        {"chat_id": 1, "payload": "x" * 65},
        {"chat_id": "1", "payload": "abc"},
        {"chat_id": 1, "payload": "abc", "surprise": 1},
    ],
)
async def test_bad_start_bodies_are_422_problems(
    tg: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    await set_webhook(tg)
    response = await tg.post("/start", json=body)
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


async def test_a_webhook_refusal_is_reported_and_kept_in_webhook_info(
    tg: httpx.AsyncClient, receiver: Receiver
) -> None:
    await set_webhook(tg)
    receiver.status = 403
    response = await tg.post("/start", json={"chat_id": 1, "payload": "abc"})
    assert response.json()["delivered"] is False
    assert response.json()["webhook_status"] == 403
    info = (await call(tg, "getWebhookInfo")).json()["result"]
    assert info["last_error_message"] == "Wrong response from the webhook: 403 Forbidden"


async def test_unreachable_webhook_is_a_502_problem() -> None:
    app = telegram.create_app(SandboxSettings(webhook_timeout_s=1))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        # Port 9 on loopback: nothing listens, the connection is refused at once.
        await call(client, "setWebhook", url="http://127.0.0.1:9/hook")
        response = await client.post("/start", json={"chat_id": 1, "payload": "abc"})
        assert response.status_code == 502
        assert response.json()["code"] == "webhook_unreachable"
        assert response.json()["update_id"] > 0


async def test_send_posts_arbitrary_text(tg: httpx.AsyncClient, receiver: Receiver) -> None:
    await set_webhook(tg)
    response = await tg.post("/send", json={"chat_id": 9, "text": "hello bot"})
    assert response.json()["delivered"] is True
    message = receiver.received[0][1]["message"]
    assert message["text"] == "hello bot"
    assert "entities" not in message


async def test_webhook_reply_in_the_response_body_is_executed(
    tg: httpx.AsyncClient, receiver: Receiver
) -> None:
    await set_webhook(tg)
    receiver.reply = {"method": "sendMessage", "chat_id": 77, "text": "Welcome!"}
    await tg.post("/start", json={"chat_id": 77, "payload": "abc"})
    listed = (await tg.get("/messages", params={"chat_id": 77})).json()
    assert [(m["message_id"], m["text"]) for m in listed] == [(2, "Welcome!")]


async def test_callback_button_flow(tg: httpx.AsyncClient, receiver: Receiver) -> None:
    await set_webhook(tg)
    markup = {"inline_keyboard": [[{"text": "Yes", "callback_data": "yes"}]]}
    await call(tg, "sendMessage", chat_id=3, text="Sure?", reply_markup=markup)
    pressed = await tg.post("/callback", json={"chat_id": 3, "message_id": 1, "data": "yes"})
    assert pressed.json()["delivered"] is True
    query = receiver.received[0][1]["callback_query"]
    assert query["data"] == "yes"
    assert query["message"]["text"] == "Sure?"
    answer = await call(tg, "answerCallbackQuery", callback_query_id=query["id"], text="Done")
    assert answer.json() == {"ok": True, "result": True}
    twice = await call(tg, "answerCallbackQuery", callback_query_id=query["id"])
    assert twice.status_code == 400
    assert "query ID is invalid" in twice.json()["description"]
    missing = await tg.post("/callback", json={"chat_id": 3, "message_id": 9, "data": "yes"})
    assert missing.status_code == 404
    assert missing.json()["code"] == "message_not_found"


async def test_messages_needs_a_chat_id(tg: httpx.AsyncClient) -> None:
    response = await tg.get("/messages")
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"
    assert any("chat_id" in e["loc"] for e in response.json()["errors"])


async def test_delete_messages_clears_them(tg: httpx.AsyncClient) -> None:
    await call(tg, "sendMessage", chat_id=1, text="a")
    await call(tg, "sendMessage", chat_id=2, text="b")
    assert (await tg.delete("/messages")).json() == {"deleted": 2}
    assert (await tg.get("/messages", params={"chat_id": 1})).json() == []


async def test_flood_fault_is_a_429_with_retry_after(tg: httpx.AsyncClient) -> None:
    configured = await tg.post("/faults", json={"mode": "flood", "retry_after": 9, "times": 1})
    assert configured.json()["operations"] == ["sendMessage"]
    flooded = await call(tg, "sendMessage", chat_id=1, text="hi")
    assert flooded.status_code == 429
    assert flooded.headers["retry-after"] == "9"
    assert flooded.json() == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 9",
        "parameters": {"retry_after": 9},
    }
    # Other methods are untouched, and after `times` the fault is spent.
    assert (await call(tg, "getMe")).json()["ok"] is True
    assert (await call(tg, "sendMessage", chat_id=1, text="hi")).json()["ok"] is True
    assert (await tg.get("/faults")).json()["injected"] == 1


async def test_error_and_blocked_faults(tg: httpx.AsyncClient) -> None:
    await tg.post("/faults", json={"mode": "error", "error_status": 502})
    failed = await call(tg, "sendMessage", chat_id=1, text="hi")
    assert failed.status_code == 502
    assert failed.json() == {
        "ok": False,
        "error_code": 502,
        "description": "Bad Gateway: injected fault",
    }
    await tg.post("/faults", json={"mode": "blocked", "operations": ["sendmessage"]})
    blocked = await call(tg, "sendMessage", chat_id=1, text="hi")
    assert blocked.status_code == 403
    assert blocked.json()["description"] == "Forbidden: bot was blocked by the user"
    assert (await tg.get("/messages", params={"chat_id": 1})).json() == []


async def test_fault_for_an_unknown_method_is_refused(tg: httpx.AsyncClient) -> None:
    response = await tg.post("/faults", json={"mode": "flood", "operations": ["sendPigeon"]})
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


async def test_reset_forgets_all_but_keeps_update_ids_growing(
    tg: httpx.AsyncClient, receiver: Receiver
) -> None:
    await set_webhook(tg)
    before = (await tg.post("/start", json={"chat_id": 1, "payload": "a"})).json()["update_id"]
    await call(tg, "sendMessage", chat_id=1, text="x")
    assert (await tg.post("/reset")).status_code == 204
    assert (await tg.get("/messages", params={"chat_id": 1})).json() == []
    assert (await tg.get("/webhook")).json()["url"] == ""
    await set_webhook(tg)
    after = (await tg.post("/start", json={"chat_id": 1, "payload": "a"})).json()["update_id"]
    assert after > before


async def test_non_ascii_multipart_and_json_encoded_markup(tg: httpx.AsyncClient) -> None:
    markup = {"inline_keyboard": [[{"text": "Да", "callback_data": "y"}]]}
    multipart = await tg.post(
        f"{BOT}/sendMessage",
        data={"chat_id": "8", "text": "Привет, мир"},
        files={"thumbnail": ("t.jpg", b"\xff\xd8", "image/jpeg")},
    )
    # Some clients send JSON-valued parameters JSON-serialized even inside a JSON body.
    encoded = await call(tg, "sendMessage", chat_id=8, text="x", reply_markup=json.dumps(markup))
    assert multipart.json()["result"]["text"] == "Привет, мир"
    assert encoded.json()["result"]["reply_markup"] == markup


async def test_updates_lists_what_was_delivered(tg: httpx.AsyncClient) -> None:
    await set_webhook(tg)
    delivery = (await tg.post("/start", json={"chat_id": 12, "payload": "p"})).json()
    updates = (await tg.get("/updates")).json()
    assert [(u["update"]["update_id"], u["status"]) for u in updates] == [
        (delivery["update_id"], 200)
    ]
    assert updates[0]["update"]["message"]["text"] == "/start p"


async def test_contact_posts_the_senders_own_contact_by_default(
    tg: httpx.AsyncClient, receiver: Receiver
) -> None:
    await set_webhook(tg)
    own = await tg.post("/contact", json={"chat_id": 555, "phone_number": "15550001234"})
    card = await tg.post(
        "/contact",
        json={"chat_id": 555, "phone_number": "+15550009876", "user_id": 777,
              "contact_first_name": "Bob"},
    )  # fmt: skip
    no_user = await tg.post(
        "/contact", json={"chat_id": 555, "phone_number": "15550001234", "user_id": None}
    )

    assert [r.status_code for r in (own, card, no_user)] == [200, 200, 200]
    assert own.json()["delivered"] is True
    messages = [update["message"] for _, update in receiver.received]
    assert messages[0]["contact"] == {
        "phone_number": "15550001234",
        "first_name": "Sandbox",
        "user_id": 555,
    }
    assert messages[0]["from"]["id"] == 555
    assert messages[0]["chat"]["id"] == 555
    assert "text" not in messages[0]
    assert messages[1]["contact"] == {
        "phone_number": "+15550009876",
        "first_name": "Bob",
        "user_id": 777,
    }
    assert messages[1]["from"]["id"] == 555  # the sender, not the card's owner
    assert messages[2]["contact"] == {"phone_number": "15550001234", "first_name": "Sandbox"}


@pytest.mark.parametrize(
    "body",
    [
        {"chat_id": 1},
        {"chat_id": 1, "phone_number": ""},
        {"chat_id": 1, "phone_number": "1" * 65},
        {"chat_id": 1, "phone_number": "123", "user_id": "2"},
        {"chat_id": 0, "phone_number": "123"},
        {"chat_id": 1, "phone_number": "123", "vcard": "x"},
    ],
)
async def test_bad_contact_bodies_are_422_problems(
    tg: httpx.AsyncClient, receiver: Receiver, body: dict[str, Any]
) -> None:
    await set_webhook(tg)
    response = await tg.post("/contact", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert receiver.received == []


async def test_the_reply_keyboard_the_bot_sent_is_listed_with_its_message(
    tg: httpx.AsyncClient,
) -> None:
    keyboard = {
        "keyboard": [[{"text": "Share my phone number", "request_contact": True}]],
        "one_time_keyboard": True,
        "resize_keyboard": True,
    }
    await call(tg, "sendMessage", chat_id=9, text="share?", reply_markup=json.dumps(keyboard))
    await call(tg, "sendMessage", chat_id=9, text="thanks", reply_markup={"remove_keyboard": True})

    listed = (await tg.get("/messages", params={"chat_id": 9})).json()

    assert [(m["text"], m["reply_markup"]) for m in listed] == [
        ("share?", keyboard),
        ("thanks", {"remove_keyboard": True}),
    ]
