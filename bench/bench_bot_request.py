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
import socket
import subprocess
import sys
import time
from collections.abc import Callable

import httpx
import uvloop
from telegram import Bot
from telegram.request import BaseRequest, HTTPXRequest

from benchlib import cpu_ms, print_loop_table, python_calls
from notifications_service.clients.bot_request import AiohttpRequest
from notifications_service.settings import DEV_BOT_TOKEN

TEXT = "<b>Receipt</b> 2 x Headphones (<code>SKU-1</code>) = 199.98 EUR\n" * 8
CHAT_ID = 4242


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _stand_in(port: int) -> subprocess.Popen[bytes]:
    """The Telegram stand-in under uvicorn (its CPU is not this process's)."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "storefront_sandbox.telegram:create_app",
            "--factory",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ]
    )


def _wait_until_up(url: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/messages", params={"chat_id": 1}).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the Telegram stand-in did not start at {url}")


async def _measure(url: str, rounds: int, calls: int) -> None:
    makers: dict[str, Callable[[], BaseRequest]] = {
        "HTTPXRequest (PTB's)": lambda: HTTPXRequest(connection_pool_size=16),
        "AiohttpRequest": lambda: AiohttpRequest(pool_size=16, timeout_s=5.0),
    }
    bots = {
        name: Bot(DEV_BOT_TOKEN, base_url=f"{url}/bot", request=make())
        for name, make in makers.items()
    }

    async def send(bot: Bot) -> None:
        await bot.send_message(chat_id=CHAT_ID, text=TEXT, parse_mode="HTML")

    cpu: dict[str, list[float]] = {name: [] for name in bots}
    call_counts: dict[str, float] = {}
    try:
        for bot in bots.values():
            await bot.initialize()
            for _ in range(100):  # warm-up: connections, caches
                await send(bot)
        for _ in range(rounds):
            for name, bot in bots.items():
                cpu[name].append(await cpu_ms(send, [bot] * calls))
        for name, bot in bots.items():
            call_counts[name] = await python_calls(send, [bot] * 50)
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
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = _stand_in(port)
    try:
        _wait_until_up(url)
        uvloop.run(_measure(url, args.rounds, args.calls))
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
