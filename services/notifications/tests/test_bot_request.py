"""The bot's aiohttp request class speaks the real Bot API and fails the way PTB expects.

Against the Telegram stand-in (which checks parameters and HTML as Telegram does) and
against real sockets that refuse or never answer: the messages arrive as sent, with
their keyboards; Telegram's answers become PTB's exceptions; a transport failure is
``NetworkError`` (without the bot token in it) and a silent server ``TimedOut``.
"""

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from telegram import Bot, KeyboardButton, ReplyKeyboardMarkup
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut

from notifications_service.clients.bot_request import AiohttpRequest
from notifications_service.clients.telegram import retry_after_s
from notifications_service.settings import DEV_BOT_TOKEN

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
