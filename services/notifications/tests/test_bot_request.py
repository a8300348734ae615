"""The bot's aiohttp request class speaks the real Bot API and fails the way PTB expects.

Against the Telegram stand-in (which checks parameters and HTML as Telegram does) and
against real sockets that refuse or never answer: the messages arrive as sent, with
their keyboards; Telegram's answers become PTB's exceptions; a transport failure is
``NetworkError`` (without the bot token in it) and a silent server ``TimedOut``. The
service's own send (``TelegramBot.send``, through ``do_api_request``) puts on the wire
exactly the request PTB's ``send_message`` does.
"""

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import SecretStr
from telegram import Bot, KeyboardButton, ReplyKeyboardMarkup
from telegram.error import (
    BadRequest,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TimedOut,
)

from notifications_service.clients.bot_request import AiohttpRequest
from notifications_service.clients.telegram import TelegramBot, retry_after_s
from notifications_service.settings import DEV_BOT_TOKEN, NotificationsSettings

from .conftest import Sandbox


@asynccontextmanager
async def bot_at(base_url: str, *, timeout_s: float = 5.0) -> AsyncIterator[Bot]:
    request = AiohttpRequest(pool_size=4, timeout_s=timeout_s)
    bot = Bot(DEV_BOT_TOKEN, base_url=f"{base_url}/bot", request=request)
    try:
        yield bot
    finally:
        await request.shutdown()


async def test_messages_reach_the_bot_api_as_sent(sandbox: Sandbox) -> None:
    async with bot_at(sandbox.url) as bot:
        me = await bot.get_me()
        assert me.is_bot
        texts = [f"<b>Order {n}</b> &amp; <i>Tom &lt;3</i> — 1,234.56 EUR" for n in range(5)]
        # Concurrent sends share the pool; each is answered with its own message.
        sent = await asyncio.gather(
            *(bot.send_message(chat_id=4242, text=text, parse_mode="HTML") for text in texts)
        )
        keyboard = ReplyKeyboardMarkup(
            [[KeyboardButton("📱 Share my phone number", request_contact=True)]],
            one_time_keyboard=True,
        )
        with_keyboard = await bot.send_message(chat_id=4242, text="Share?", reply_markup=keyboard)
    assert len({message.message_id for message in sent}) == len(texts)
    assert all(message.chat.id == 4242 for message in sent)
    listed = await sandbox.messages(4242)
    by_id = {m["message_id"]: m for m in listed}
    for text, message in zip(texts, sent, strict=True):
        assert by_id[message.message_id]["text"] == text
        assert by_id[message.message_id]["parse_mode"] == "HTML"
    assert listed[-1]["message_id"] == with_keyboard.message_id
    assert listed[-1]["reply_markup"]["keyboard"][0][0]["request_contact"] is True


async def test_telegram_refusals_become_ptb_exceptions(sandbox: Sandbox) -> None:
    async with bot_at(sandbox.url) as bot:
        with pytest.raises(BadRequest):
            await bot.send_message(chat_id=4243, text="<b>unclosed", parse_mode="HTML")
        await sandbox.faults(mode="flood", retry_after=7, times=1)
        with pytest.raises(RetryAfter) as flood:
            await bot.send_message(chat_id=4243, text="hello")
        assert retry_after_s(flood.value) == 7
        await sandbox.faults(mode="blocked", times=1)
        with pytest.raises(Forbidden):
            await bot.send_message(chat_id=4243, text="hello")
        await sandbox.faults(mode="error", error_status=503, times=1)
        with pytest.raises(NetworkError):
            await bot.send_message(chat_id=4243, text="hello")
        # After all that the pool still works.
        message = await bot.send_message(chat_id=4243, text="hello again")
    assert (await sandbox.messages(4243))[-1]["message_id"] == message.message_id


async def test_a_refused_connection_is_a_network_error_without_the_token() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with bot_at(f"http://127.0.0.1:{port}") as bot:
        with pytest.raises(NetworkError) as failure:
            await bot.send_message(chat_id=1, text="hello")
    assert not isinstance(failure.value, TimedOut)
    assert DEV_BOT_TOKEN not in str(failure.value)
    assert DEV_BOT_TOKEN.split(":")[1] not in str(failure.value)


async def test_a_server_that_never_answers_times_out() -> None:
    accepted = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set()
        await reader.read(65536)  # takes the request, answers nothing
        await asyncio.sleep(30)
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with bot_at(f"http://127.0.0.1:{port}", timeout_s=0.3) as bot:
            with pytest.raises(TimedOut):
                await bot.send_message(chat_id=1, text="hello")
        assert accepted.is_set()  # it was the read that timed out, not the connect
    finally:
        server.close()


@asynccontextmanager
async def recording_bot_api(status: int = 200) -> AsyncIterator[tuple[str, list[Any]]]:
    """A Bot API on a real socket that records each request's path, Content-Type and raw
    body; getMe answers a bot, every other call a message (or ``status``'s error)."""
    seen: list[tuple[str, str, bytes]] = []

    async def answer(request: web.Request) -> web.Response:
        body = await request.read()
        method = request.path.rsplit("/", 1)[-1]
        if method != "getMe":
            seen.append((request.path, request.content_type, body))
        if method == "getMe":
            result: dict[str, Any] = {"id": 1, "is_bot": True, "first_name": "B", "username": "b"}
        elif status != 200:
            error = {"ok": False, "error_code": status, "description": "Unauthorized"}
            return web.json_response(error, status=status)
        else:
            chat = {"id": 4242, "type": "private"}
            result = {"message_id": 700 + len(seen), "date": 0, "chat": chat, "text": "x"}
        return web.json_response({"ok": True, "result": result})

    app = web.Application()
    app.router.add_post("/{path:.*}", answer)
    async with TestServer(app) as server:
        yield str(server.make_url("")).rstrip("/"), seen


def _bot_settings(url: str) -> NotificationsSettings:
    return NotificationsSettings(
        telegram_api_url=url, telegram_bot_token=SecretStr(DEV_BOT_TOKEN), telegram_backoff_s=0.01
    )


async def test_the_services_send_is_send_message_on_the_wire() -> None:
    keyboard = ReplyKeyboardMarkup(
        [[KeyboardButton("📱 Share my phone number", request_contact=True)]],
        one_time_keyboard=True,
    )
    text = "<b>Order 1</b> &amp; <i>Tom &lt;3</i> — 1,234.56 EUR\n+ a=b&c"
    async with recording_bot_api() as (url, seen):
        async with bot_at(url) as bot:
            await bot.send_message(chat_id=4242, text=text, parse_mode="HTML")
            await bot.send_message(
                chat_id=4242, text=text, parse_mode="HTML", reply_markup=keyboard
            )
        telegram = TelegramBot(_bot_settings(url))
        try:
            plain = await telegram.send(4242, text)
            with_keyboard = await telegram.send(4242, text, reply_markup=keyboard)
        finally:
            await telegram.aclose()
    # Byte for byte: the same method, the same form-encoded parameters in the same order.
    assert seen[2] == seen[0]
    assert seen[3] == seen[1]
    path, content_type, body = seen[1]
    assert path.endswith("/sendMessage")
    assert content_type == "application/x-www-form-urlencoded"
    assert body.startswith(b"chat_id=4242&text=%3Cb%3EOrder+1")
    # The message ids are Telegram's answers to the service's own calls.
    assert (plain, with_keyboard) == (703, 704)


async def test_a_rejected_token_is_invalid_token_as_with_send_message() -> None:
    async with recording_bot_api(status=401) as (url, seen):
        telegram = TelegramBot(_bot_settings(url))
        try:
            await telegram.bot.initialize()  # getMe answered: the bot is initialised
            with pytest.raises(InvalidToken):
                await telegram.send(4242, "hello")
        finally:
            await telegram.aclose()
    assert len(seen) == 1  # final, not retried
