"""Notifications' CPU per checkout on ``orders.events``: entries one by one against a batch.

A local slice of the platform: a throwaway PostgreSQL (notifications' migrations
applied) and Redis, and the Telegram stand-in, each a process of its own; notifications'
real consumer (the kit's ``StreamConsumer``), notifier, chat cache and bot in this
process (auth is not asked: the chat cache is warmed first, as it is under load). A
checkout puts seven events on the stream, two of which make a message (the order's
confirmation and its receipt); ``--burst`` checkouts arrive together, as the consumer's
linger gathers them. The same bursts go through two consumers in alternating rounds:

- ``one by one``: a plain handler (the notifier's ``__call__``), so each entry costs
  its own chat lookup, claim statement, send and finish statement, as before the batch
  path;
- ``batch``: the notifier as a ``BatchHandler`` (one ``HMGET`` pipeline, one claim
  statement, concurrent sends, one finish statement per read).

Printed per mode: the consumer's CPU-ms per checkout in this process (its reads, the
handling and the acknowledgements, not the publishing of the bursts; median and range
of the rounds), PostgreSQL's and Redis' (their process trees, publishing included in
Redis'), and the statements per checkout:

    .venv/bin/python bench/bench_notifier.py --rounds 5 --checkouts 200 --burst 2
"""

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast
from uuid import UUID

import psutil
import uvloop
from pydantic import SecretStr
from sqlalchemy import event as sqlalchemy_event

from benchlib import CHECKOUT_EVENTS, sandbox_stand_in

MODES = ("one by one", "batch")


def _tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its descendants (reaped ones included)."""
    root = psutil.Process(pid)
    total = 0.0
    for process in (root, *root.children(recursive=True)):
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def _pid(server: Any) -> int:
    """The pid of a server :mod:`storefront_stack.infra` started (its process tree's root)."""
    process = server.process.process
    assert process is not None
    return int(process.pid)


class _WarmAuth:
    """Auth's answers for the cache to fill once (a bench has no auth service)."""

    def __init__(self, chats: dict[UUID, int]) -> None:
        self.chats = chats

    async def chat_of(self, user_id: UUID) -> int | None:
        return self.chats[user_id]


def _checkout(user_id: UUID) -> list[Any]:
    from storefront_kit.events import EventEnvelope

    order_id = str(uuid.uuid4())
    line = {"sku": "SKU-1", "qty": 2, "unit_price": 9999, "currency": "EUR", "name": "Headphones"}
    data = {
        "order_id": order_id,
        "user_id": str(user_id),
        "status": "CONFIRMED",
        "previous": "PENDING",
        "lines": [line, {**line, "sku": "SKU-2", "qty": 1}],
        "subtotal": 29997,
        "total": 29997,
        "currency": "EUR",
        "payment_id": "pay_1",
        "amount": 29997,
    }
    return [
        EventEnvelope(
            id=uuid.uuid4(),
            type=kind,
            occurred_at=datetime.now(UTC),
            source="orders",
            data=data,
        )
        for kind in CHECKOUT_EVENTS
    ]


async def _measure(args: argparse.Namespace, database_url: str, redis_url: str, pids: Any) -> None:
    from notifications_service import fields
    from notifications_service.clients.chats import ChatDirectory
    from notifications_service.clients.telegram import TelegramBot
    from notifications_service.service.notifier import OrderNotifier
    from notifications_service.settings import DEV_BOT_TOKEN, NotificationsSettings
    from storefront_kit.db import create_engine
    from storefront_kit.events import EventEnvelope, StreamConsumer
    from storefront_kit.redis import create_redis

    settings = NotificationsSettings(
        database_url=database_url,
        redis_url=redis_url,
        telegram_api_url=args.telegram_url,
        telegram_bot_token=SecretStr(DEV_BOT_TOKEN),
    )
    fields.install(*settings.field_crypto())
    engine = create_engine(database_url, pool_size=20)
    redis = create_redis(redis_url)
    telegram = TelegramBot(settings)
    users = {uuid.uuid4(): 1_000_000 + n for n in range(args.users)}
    chats = ChatDirectory(
        redis=redis, auth=cast(Any, _WarmAuth(users)), cipher=fields.FIELDS.cipher, ttl_s=86_400
    )
    notifier = OrderNotifier(
        engine=engine, telegram=telegram, chats=chats, consumer="bench", lease_s=90
    )

    async def one_by_one(event: EventEnvelope) -> None:
        await notifier(event)

    handlers: dict[str, Callable[[EventEnvelope], Awaitable[None]]] = {
        "one by one": one_by_one,
        "batch": notifier,
    }
    statements = 0

    def count(*_args: Any) -> None:
        nonlocal statements
        statements += 1

    sqlalchemy_event.listen(engine.sync_engine, "before_cursor_execute", count)
    user_ids = list(users)
    await chats.chats_of(user_ids)  # the cache, warm as under load

    async def round_of(mode: str, checkouts: int, stream: str) -> dict[str, float]:
        nonlocal statements
        consumer = StreamConsumer(
            redis=redis,
            stream=stream,
            group="notifications",
            consumer="bench",
            handler=handlers[mode],
            batch_size=50,
        )
        await consumer.ensure_group()
        bursts = [
            [e for n in range(args.burst) for e in _checkout(user_ids[(start + n) % len(users)])]
            for start in range(0, checkouts, args.burst)
        ]
        own = 0.0  # the consumer's CPU only, not the publishing of the bursts
        postgres, redis_cpu = _tree_cpu_s(pids[0]), _tree_cpu_s(pids[1])
        statements = 0
        for burst in bursts:
            async with redis.pipeline(transaction=False) as pipe:
                for event in burst:
                    pipe.xadd(stream, event.to_stream_fields())
                await pipe.execute()
            began = time.process_time()
            left = len(burst)
            while left:
                left -= await consumer.process_batch(block_ms=1000)
            own += time.process_time() - began
        done = len(bursts) * args.burst
        return {
            "own": own * 1000 / done,
            "postgres": (_tree_cpu_s(pids[0]) - postgres) * 1000 / done,
            "redis": (_tree_cpu_s(pids[1]) - redis_cpu) * 1000 / done,
            "statements": statements / done,
        }

    figures: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    try:
        for mode in MODES:  # warm-up: connections, statement caches
            await round_of(mode, 20, f"bench.warm.{mode}")
        for n in range(args.rounds):
            for mode in MODES if n % 2 == 0 else MODES[::-1]:
                stream = f"bench.{n}.{mode.replace(' ', '-')}"
                figures[mode].append(await round_of(mode, args.checkouts, stream))
                await redis.delete(stream)
    finally:
        await telegram.aclose()
        await redis.aclose()
        await engine.dispose()
    print(
        f"CPU-ms per checkout ({len(CHECKOUT_EVENTS)} events, 2 messages), {args.rounds} rounds"
        f" of {args.checkouts} checkouts in bursts of {args.burst}:"
    )
    print(f"{'mode':<11} {'notifications':>22} {'postgres':>20} {'redis':>20} {'statements':>11}")
    for mode in MODES:
        cells = []
        for key in ("own", "postgres", "redis"):
            values = [f[key] for f in figures[mode]]
            cells.append(f"{statistics.median(values):>6.2f} ({min(values):.2f}-{max(values):.2f})")
        per = statistics.median(f["statements"] for f in figures[mode])
        print(f"{mode:<11} {cells[0]:>22} {cells[1]:>20} {cells[2]:>20} {per:>11.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--checkouts", type=int, default=200, help="per round and mode")
    parser.add_argument("--burst", type=int, default=2, help="checkouts per read")
    parser.add_argument("--users", type=int, default=50)
    args = parser.parse_args()

    from storefront_stack import infra
    from storefront_stack.processes import free_port
    from storefront_stack.pytest_plugin import create_test_database

    with (
        sandbox_stand_in("telegram") as telegram_url,
        tempfile.TemporaryDirectory(prefix="bench-notifier-") as tmp,
    ):
        args.telegram_url = telegram_url
        scratch = Path(tmp)
        postgres = infra.start_postgres(
            scratch / "postgres", free_port(), log_file=scratch / "pg.log", fast_unsafe=True
        )
        redis = infra.start_redis(
            scratch / "redis", free_port(), persistent=False, log_file=scratch / "redis.log"
        )
        try:
            database_url = create_test_database(postgres.url, "notifications_service")
            pids = (_pid(postgres), _pid(redis))
            uvloop.run(_measure(args, database_url, redis.url, pids))
        finally:
            redis.stop()
            postgres.stop()


if __name__ == "__main__":
    main()
