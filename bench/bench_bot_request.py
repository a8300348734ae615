"""Client CPU of one Bot API call: python-telegram-bot over httpx against over aiohttp.

Notifications sends two messages per checkout (issue 17). This starts the Telegram
stand-in in a process of its own (uvicorn, a free port) and measures this process's
CPU per ``Bot.send_message`` (an HTML receipt-sized text) through PTB's own
``HTTPXRequest`` and through notifications' ``AiohttpRequest``
(``notifications_service.clients.bot_request``), in alternating rounds after a warm-up,
and prints the median and range of each:

    .venv/bin/python bench/bench_bot_request.py --rounds 5 --calls 500
"""

import argparse
from collections.abc import Awaitable, Callable

import uvloop
from telegram import Bot
from telegram.request import BaseRequest, HTTPXRequest

from benchlib import alternating_rounds, print_loop_table, sandbox_stand_in
from notifications_service.clients.bot_request import AiohttpRequest
from notifications_service.settings import DEV_BOT_TOKEN

TEXT = "<b>Receipt</b> 2 x Headphones (<code>SKU-1</code>) = 199.98 EUR\n" * 8
CHAT_ID = 4242


async def _measure(url: str, rounds: int, calls: int) -> None:
    makers: dict[str, Callable[[], BaseRequest]] = {
        "HTTPXRequest (PTB's)": lambda: HTTPXRequest(connection_pool_size=16),
        "AiohttpRequest": lambda: AiohttpRequest(pool_size=16, timeout_s=5.0),
    }
    bots = {
        name: Bot(DEV_BOT_TOKEN, base_url=f"{url}/bot", request=make())
        for name, make in makers.items()
    }

    def sender(bot: Bot) -> Callable[[int], Awaitable[None]]:
        async def send(_: int) -> None:
            await bot.send_message(chat_id=CHAT_ID, text=TEXT, parse_mode="HTML")

        return send

    try:
        for bot in bots.values():
            await bot.initialize()
        cpu, call_counts = await alternating_rounds(
            {name: sender(bot) for name, bot in bots.items()},
            rounds=rounds,
            calls=calls,
            warm_up=100,
        )
    finally:
        for bot in bots.values():
            await bot.shutdown()
    print(f"client CPU-ms per send_message, {rounds} rounds of {calls} calls each:")
    print_loop_table("request class", bots, cpu, call_counts, digits=3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=500)
    args = parser.parse_args()
    with sandbox_stand_in("telegram") as url:
        uvloop.run(_measure(url, args.rounds, args.calls))


if __name__ == "__main__":
    main()
