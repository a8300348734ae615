"""ws-gateway's ``orders.events`` relay: CPU per checkout with and without a consumer linger.

A checkout puts seven events on ``orders.events``, one saga step after the other. Read
as they come, each costs the relay an ``XREADGROUP`` wake-up and an ``XACK``; lingering
``--linger-ms`` after a read that found entries, a checkout's events are read and
acknowledged together. This starts a Redis of its own, publishes checkouts from a
thread (``--step-ms`` between a checkout's events, ``--rate`` checkouts a second) and
runs ws-gateway's real relay (the kit's ``StreamConsumer`` and ``OrderEventRelay``
publishing to the users' channels) in this process's event loop, alternating rounds
with the linger off and on. Printed: the event loop thread's CPU-ms per checkout (the
publisher's thread is not counted) and Redis' (its process, publishing included), as
median and range of the rounds:

    .venv/bin/python bench/bench_consumer_linger.py --rounds 5 --checkouts 200 --linger-ms 30
"""

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import uvloop

from benchlib import CHECKOUT_EVENTS


def _cpu_s(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def _publish(redis_url: str, stream: str, checkouts: int, step_s: float, rate: float) -> None:
    """Checkouts' events, paced as a saga puts them on the stream (a thread of its own)."""
    import redis as sync_redis

    from storefront_kit.events import EventEnvelope

    client = sync_redis.Redis.from_url(redis_url)
    began = time.monotonic()
    try:
        for n in range(checkouts):
            time.sleep(max(0.0, began + n / rate - time.monotonic()))
            data = {"order_id": str(uuid.uuid4()), "user_id": str(uuid.uuid4()), "status": "X"}
            for kind in CHECKOUT_EVENTS:
                envelope = EventEnvelope(
                    id=uuid.uuid4(),
                    type=kind,
                    occurred_at=datetime.now(UTC),
                    source="orders",
                    data=data,
                )
                client.xadd(stream, envelope.to_stream_fields())  # type: ignore[arg-type]
                time.sleep(step_s)
    finally:
        client.close()


async def _measure(args: argparse.Namespace, redis_url: str, redis_pid: int) -> None:
    from storefront_kit.events import StreamConsumer
    from storefront_kit.redis import create_redis
    from ws_gateway_service.clients.channels import ChannelLayer
    from ws_gateway_service.workers.relay import OrderEventRelay

    redis = create_redis(redis_url)

    async def deliver(*_args: Any) -> None:
        return None

    relay = OrderEventRelay(ChannelLayer(redis, deliver))
    modes = {"no linger": 0.0, f"linger {args.linger_ms:g} ms": args.linger_ms / 1000}

    async def round_of(linger_s: float, stream: str, checkouts: int) -> tuple[float, float]:
        consumer = StreamConsumer(
            redis=redis,
            stream=stream,
            group="ws-gateway",
            consumer="bench",
            handler=relay,
            linger_s=linger_s,
        )
        await consumer.ensure_group()
        stop = asyncio.Event()
        task = asyncio.create_task(consumer.run(stop))
        own, redis_cpu = time.thread_time(), _cpu_s(redis_pid)
        await asyncio.to_thread(
            _publish, redis_url, stream, checkouts, args.step_ms / 1000, args.rate
        )
        last = (await redis.xinfo_stream(stream))["last-generated-id"]
        while True:  # until the relay has read and acknowledged everything
            info = {g["name"]: g for g in await redis.xinfo_groups(stream)}["ws-gateway"]
            if info["pending"] == 0 and info["last-delivered-id"] == last:
                break
            await asyncio.sleep(0.05)
        own, redis_cpu = time.thread_time() - own, _cpu_s(redis_pid) - redis_cpu
        stop.set()
        await task
        await redis.delete(stream)
        return own * 1000 / checkouts, redis_cpu * 1000 / checkouts

    figures: dict[str, list[tuple[float, float]]] = {mode: [] for mode in modes}
    try:
        for linger_s in modes.values():
            await round_of(linger_s, "bench.warm", 20)
        for n in range(args.rounds):
            order = list(modes.items()) if n % 2 == 0 else list(modes.items())[::-1]
            for mode, linger_s in order:
                figures[mode].append(await round_of(linger_s, f"bench.{n}", args.checkouts))
    finally:
        await redis.aclose()
    print(
        f"CPU-ms per checkout ({len(CHECKOUT_EVENTS)} events {args.step_ms:g} ms apart,"
        f" {args.rate:g} checkouts/s), {args.rounds} rounds of {args.checkouts}:"
    )
    print(f"{'relay':<16} {'ws-gateway loop':>22} {'redis':>20}")
    for mode, rounds in figures.items():
        cells = []
        for index in (0, 1):
            values = [r[index] for r in rounds]
            cells.append(f"{statistics.median(values):>6.3f} ({min(values):.3f}-{max(values):.3f})")
        print(f"{mode:<16} {cells[0]:>22} {cells[1]:>20}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--checkouts", type=int, default=200, help="per round and mode")
    parser.add_argument("--linger-ms", type=float, default=30.0)
    parser.add_argument("--step-ms", type=float, default=5.0, help="between a checkout's events")
    parser.add_argument("--rate", type=float, default=20.0, help="checkouts a second")
    args = parser.parse_args()

    from storefront_stack import infra
    from storefront_stack.processes import free_port

    with tempfile.TemporaryDirectory(prefix="bench-linger-") as tmp:
        scratch = Path(tmp)
        redis = infra.start_redis(
            scratch / "redis", free_port(), persistent=False, log_file=scratch / "redis.log"
        )
        try:
            process = redis.process.process
            assert process is not None
            pid = process.pid
            uvloop.run(_measure(args, redis.url, pid))
        finally:
            redis.stop()


if __name__ == "__main__":
    main()
