"""The Telegram stand-in under real uvicorn, driven by the real python-telegram-bot."""

import datetime as dtm
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from telegram import (
    Bot,
    Contact,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    MessageEntity,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, RetryAfter
from telegram.ext import filters

from storefront_sandbox import telegram as telegram_sandbox
from storefront_sandbox.settings import SandboxSettings

ServeApp = Callable[[Any], AbstractContextManager[str]]
TOKEN = "987654321:AAF-ptb_sandbox_token_0123456789abcdef"
SECRET = "webhook-secret_42"


class Webhook:
    """A tiny webhook receiver that, like the notifications service, checks the secret."""

    def __init__(self) -> None:
        self.updates: list[dict[str, Any]] = []
        self.secrets: list[str | None] = []
        self.received = threading.Event()

    async def hook(self, request: Request) -> Response:
        secret = request.headers.get("X-Telegram-Bot-Api-Secret-Token")
        self.secrets.append(secret)
        if secret != SECRET:
            return Response(status_code=403)
        self.updates.append(await request.json())
        self.received.set()
        return Response(status_code=200)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/api/v1/telegram/webhook", self.hook, methods=["POST"])])


@pytest.fixture(autouse=True)
def _ptb_timedelta(monkeypatch: pytest.MonkeyPatch) -> None:
    # PTB 22 warns on every int-valued time period unless opted in; warnings are errors here.
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@pytest.fixture
def sandbox_url(serve_app: ServeApp) -> Iterator[str]:
    with serve_app(telegram_sandbox.create_app(SandboxSettings())) as url:
        yield url


@pytest.fixture
def webhook(serve_app: ServeApp) -> Iterator[tuple[Webhook, str]]:
    receiver = Webhook()
    with serve_app(receiver.app()) as url:
        yield receiver, f"{url}/api/v1/telegram/webhook"


async def test_ptb_get_me_and_send_message(sandbox_url: str) -> None:
    async with Bot(TOKEN, base_url=f"{sandbox_url}/bot") as bot:
        me = await bot.get_me()
        assert me.id == 987654321
        assert me.is_bot is True
        assert me.username == "storefront_sandbox_bot"
        assert bot.username == "storefront_sandbox_bot"

        keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Track", callback_data="t:1")]])
        sent = await bot.send_message(
            chat_id=4242,
            text="Your code: <b>123456</b>",
            parse_mode=ParseMode.HTML,
            reply_markup=keyboard,
        )
        assert sent.message_id == 1
        assert sent.chat.id == 4242
        assert sent.text == "Your code: <b>123456</b>"
        assert sent.from_user is not None
        assert sent.from_user.id == me.id
        assert sent.reply_markup == keyboard

        await bot.send_message(chat_id=4242, text=r"Order *42* shipped\!", parse_mode="MarkdownV2")
        assert await bot.send_chat_action(chat_id=4242, action="typing") is True
        edited = await bot.edit_message_text("Code used", chat_id=4242, message_id=1)
        assert isinstance(edited, type(sent))
        assert edited.text == "Code used"
        assert await bot.delete_message(chat_id=4242, message_id=2) is True

        with pytest.raises(BadRequest, match=r"(?i)character '!' is reserved"):
            await bot.send_message(chat_id=4242, text="Hi!", parse_mode="MarkdownV2")

    async with httpx.AsyncClient(base_url=sandbox_url) as client:
        listed = (await client.get("/messages", params={"chat_id": 4242})).json()
    assert len(listed) == 1
    assert listed[0]["text"] == "Code used"
    assert listed[0]["parse_mode"] is None
    assert listed[0]["edit_date"] is not None


async def test_ptb_set_webhook_with_secret_and_read_it_back(sandbox_url: str) -> None:
    async with Bot(TOKEN, base_url=f"{sandbox_url}/bot") as bot:
        ok = await bot.set_webhook(
            url="http://127.0.0.1:8080/api/v1/telegram/webhook",
            secret_token=SECRET,
            allowed_updates=["message", "callback_query"],
            drop_pending_updates=True,
        )
        assert ok is True
        info = await bot.get_webhook_info()
        assert info.url == "http://127.0.0.1:8080/api/v1/telegram/webhook"
        assert info.allowed_updates == ("message", "callback_query")
        assert info.pending_update_count == 0
        assert await bot.set_my_commands([("start", "Link this chat")]) is True
        commands = await bot.get_my_commands()
        assert [(c.command, c.description) for c in commands] == [("start", "Link this chat")]
        assert await bot.delete_webhook() is True
        assert (await bot.get_webhook_info()).url == ""


async def test_ptb_flood_fault_raises_retry_after(sandbox_url: str) -> None:
    async with httpx.AsyncClient(base_url=sandbox_url) as client:
        configured = await client.post("/faults", json={"mode": "flood", "retry_after": 17})
        assert configured.json()["mode"] == "flood"
    async with Bot(TOKEN, base_url=f"{sandbox_url}/bot") as bot:
        with pytest.raises(RetryAfter) as caught:
            await bot.send_message(chat_id=1, text="hello")
        assert caught.value.retry_after == dtm.timedelta(seconds=17)
        # get_me is not in the default fault set: the bot still initializes and works.
        assert (await bot.get_me()).id == 987654321


async def test_ptb_blocked_fault_raises_forbidden(sandbox_url: str) -> None:
    async with httpx.AsyncClient(base_url=sandbox_url) as client:
        await client.post("/faults", json={"mode": "blocked"})
    async with Bot(TOKEN, base_url=f"{sandbox_url}/bot") as bot:
        with pytest.raises(Forbidden, match="bot was blocked by the user"):
            await bot.send_message(chat_id=1, text="hello")


async def test_start_posts_an_update_ptb_parses(
    sandbox_url: str, webhook: tuple[Webhook, str]
) -> None:
    receiver, hook_url = webhook
    async with Bot(TOKEN, base_url=f"{sandbox_url}/bot") as bot:
        assert await bot.set_webhook(url=hook_url, secret_token=SECRET) is True
        async with httpx.AsyncClient(base_url=sandbox_url) as client:
            response = await client.post("/start", json={"chat_id": 31337, "payload": "abc"})
        assert response.status_code == 200
        delivery = response.json()
        assert delivery["delivered"] is True
        assert delivery["webhook_status"] == 200
        assert receiver.secrets == [SECRET]
        payload = receiver.updates[0]
        assert payload["update_id"] == delivery["update_id"]

        update = Update.de_json(payload, bot)
        assert update.update_id == delivery["update_id"]
        assert update.message is not None
        assert update.message.text == "/start abc"
        assert update.message.chat.id == 31337
        assert update.message.chat.type == "private"
        assert update.message.from_user is not None
        assert update.message.from_user.id == 31337
        assert update.message.from_user.is_bot is False
        assert update.message.entities == (
            MessageEntity(type=MessageEntity.BOT_COMMAND, offset=0, length=6),
        )
        assert update.message.parse_entities() == {update.message.entities[0]: "/start"}


async def test_start_with_a_wrong_secret_is_refused_by_the_webhook(
    sandbox_url: str, webhook: tuple[Webhook, str]
) -> None:
    receiver, hook_url = webhook
    async with Bot(TOKEN, base_url=f"{sandbox_url}/bot") as bot:
        await bot.set_webhook(url=hook_url, secret_token="not-the-right-one")
        async with httpx.AsyncClient(base_url=sandbox_url) as client:
            response = await client.post("/start", json={"chat_id": 1, "payload": "abc"})
        assert response.json()["delivered"] is False
        assert response.json()["webhook_status"] == 403
        assert receiver.updates == []
        info = await bot.get_webhook_info()
        assert info.last_error_message == "Wrong response from the webhook: 403 Forbidden"


async def test_contact_posts_an_update_ptb_reads_as_a_contact(
    sandbox_url: str, webhook: tuple[Webhook, str]
) -> None:
    receiver, hook_url = webhook
    async with Bot(TOKEN, base_url=f"{sandbox_url}/bot") as bot:
        await bot.set_webhook(url=hook_url, secret_token=SECRET)
        async with httpx.AsyncClient(base_url=sandbox_url) as client:
            own = await client.post("/contact", json={"chat_id": 31337, "phone_number": "15551"})
            foreign = await client.post(
                "/contact", json={"chat_id": 31337, "phone_number": "15552", "user_id": 9}
            )
        assert own.json()["delivered"] is foreign.json()["delivered"] is True

        own_update = Update.de_json(receiver.updates[0], bot)
        foreign_update = Update.de_json(receiver.updates[1], bot)

    for update in (own_update, foreign_update):
        assert filters.CONTACT.check_update(update)
        assert not filters.TEXT.check_update(update)
        assert update.message is not None
        assert update.message.from_user is not None
        assert update.message.from_user.id == 31337
    assert own_update.message is not None
    assert own_update.message.contact == Contact("15551", "Sandbox", user_id=31337)
    assert foreign_update.message is not None
    assert foreign_update.message.contact is not None
    assert foreign_update.message.contact.user_id == 9


async def test_ptb_reply_keyboards_are_recorded_with_the_message(sandbox_url: str) -> None:
    keyboard = ReplyKeyboardMarkup(
        [[KeyboardButton("Share", request_contact=True)]],
        one_time_keyboard=True,
        resize_keyboard=True,
    )
    async with Bot(TOKEN, base_url=f"{sandbox_url}/bot") as bot:
        asked = await bot.send_message(chat_id=5, text="share?", reply_markup=keyboard)
        await bot.send_message(chat_id=5, text="done", reply_markup=ReplyKeyboardRemove())
    async with httpx.AsyncClient(base_url=sandbox_url) as client:
        listed = (await client.get("/messages", params={"chat_id": 5})).json()

    assert asked.reply_markup is None  # a reply keyboard is not part of the Message
    assert listed[0]["reply_markup"] == {
        "keyboard": [[{"text": "Share", "request_contact": True}]],
        "one_time_keyboard": True,
        "resize_keyboard": True,
    }
    assert listed[1]["reply_markup"] == {"remove_keyboard": True}
