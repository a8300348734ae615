"""Authenticated sockets, the Redis channel layer across replicas, presence and limits."""

import asyncio
import contextlib
import json
import sys
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import websockets
from redis.asyncio import Redis, RedisCluster
from websockets.exceptions import ConnectionClosed

from storefront_kit.events import EventEnvelope
from storefront_stack.processes import ManagedProcess, free_port
from storefront_stack.serving import local_server
from ws_gateway_service.clients.channels import ADMIN_ALERTS, user_channel
from ws_gateway_service.service.hub import Connection, Hub
from ws_gateway_service.service.presence import Presence

from .conftest import AUDIENCE, ISSUER, Replica, Tokens, wait_until

# On one Redis server and on a three-master Redis Cluster (docs/redis.md).
pytestmark = pytest.mark.redis_modes


def connect(replica: Replica, token: str | None) -> Any:
    protocols = ["bearer", token] if token else None
    return websockets.connect(replica.ws_url, subprotocols=protocols, open_timeout=5)  # type: ignore[arg-type]


async def receive_json(socket: Any, *, skip: tuple[str, ...] = ("ping",)) -> dict[str, Any]:
    while True:
        message = json.loads(await asyncio.wait_for(socket.recv(), 5))
        if message.get("type") not in skip:
            return message


async def closed_with(socket: Any) -> int:
    with pytest.raises(ConnectionClosed) as info:
        while True:
            await asyncio.wait_for(socket.recv(), 10)
    assert info.value.rcvd is not None
    return info.value.rcvd.code


async def test_socket_without_token_is_closed_4401(replicas: list[Replica]) -> None:
    async with connect(replicas[0], None) as socket:
        assert await closed_with(socket) == 4401


async def test_socket_with_forged_token_is_closed_4401(replicas: list[Replica]) -> None:
    from jwt_core_lib import SigningKey

    forged = Tokens(SigningKey.generate()).user("mallory")
    async with connect(replicas[0], forged) as socket:
        assert await closed_with(socket) == 4401


async def test_user_gets_own_pushes_from_any_replica_and_nobody_elses(
    replicas: list[Replica], tokens: Tokens, redis: Redis
) -> None:
    async with (
        connect(replicas[0], tokens.user("alice")) as alice,
        connect(replicas[1], tokens.user("bob")) as bob,
    ):
        assert (await receive_json(alice))["type"] == "welcome"
        assert (await receive_json(bob))["type"] == "welcome"
        await wait_until(lambda: _subscribers(redis, user_channel("alice")))
        await redis.publish(
            user_channel("alice"), json.dumps({"type": "order.status_changed", "n": 1})
        )
        got = await receive_json(alice)
        assert got["type"] == "order.status_changed"
        assert got["n"] == 1
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(receive_json(bob), 0.5)


async def _subscribers(redis: Redis, channel: str) -> bool:
    # A cluster counts each node's subscribers apart: ask every master.
    nodes = {"target_nodes": RedisCluster.PRIMARIES} if isinstance(redis, RedisCluster) else {}
    counts = await redis.pubsub_numsub(channel, **nodes)
    return bool(counts and counts[0][1] > 0)


async def test_order_events_on_the_stream_reach_the_users_socket(
    replicas: list[Replica], tokens: Tokens, redis: Redis
) -> None:
    async with connect(replicas[1], tokens.user("carol")) as carol:
        await receive_json(carol)
        await wait_until(lambda: _subscribers(redis, user_channel("carol")))
        event = EventEnvelope.new(
            type="order.status_changed",
            source="orders",
            data={"order_id": "o-1", "user_id": "carol", "status": "SHIPPED"},
        )
        await redis.xadd("orders.events", event.to_stream_fields())  # type: ignore[arg-type]
        pushed = await receive_json(carol)
        assert pushed["type"] == "order.status_changed"
        assert pushed["event_id"] == str(event.id)
        assert pushed["data"]["status"] == "SHIPPED"


async def test_a_burst_of_order_events_reaches_each_users_socket_in_order_once(
    replicas: list[Replica], tokens: Tokens, redis: Redis
) -> None:
    """Events read together leave together (one round trip on one Redis server): each
    still goes to its own user only, in the order it was published, once."""
    async with (
        connect(replicas[0], tokens.user("erin")) as erin,
        connect(replicas[1], tokens.user("frank")) as frank,
    ):
        for socket, user in ((erin, "erin"), (frank, "frank")):
            await receive_json(socket)
            await wait_until(lambda user=user: _subscribers(redis, user_channel(user)))
        statuses = ["RESERVED", "PAID", "SHIPMENT_CREATED", "CONFIRMED"]
        events = [
            EventEnvelope.new(
                type="order.status_changed",
                source="orders",
                data={"order_id": f"o-{user}", "user_id": user, "status": status},
            )
            for status in statuses
            for user in ("erin", "frank")
        ]
        ignored = EventEnvelope.new(
            type="order.unknown", source="orders", data={"user_id": "erin", "status": "X"}
        )
        # Sent at once (a MULTI on one server): the relay's next read takes them together.
        async with redis.pipeline(transaction=not isinstance(redis, RedisCluster)) as pipe:
            for event in [ignored, *events]:
                pipe.xadd("orders.events", event.to_stream_fields())  # type: ignore[arg-type]
            await pipe.execute()

        for socket, user in ((erin, "erin"), (frank, "frank")):
            pushed = [await receive_json(socket) for _ in statuses]
            assert [p["data"]["status"] for p in pushed] == statuses
            assert {p["data"]["user_id"] for p in pushed} == {user}
            assert [p["event_id"] for p in pushed] == [
                str(e.id) for e in events if e.data["user_id"] == user
            ]
            with pytest.raises(TimeoutError):  # nothing more: no repeat, not the other's
                await asyncio.wait_for(receive_json(socket), 0.5)


async def test_staff_receive_alerts_and_customers_do_not(
    replicas: list[Replica], tokens: Tokens, redis: Redis
) -> None:
    async with (
        connect(replicas[0], tokens.user("root", "admin")) as admin,
        connect(replicas[0], tokens.user("mod", "moderator")) as moderator,
        connect(replicas[1], tokens.user("dave")) as customer,
    ):
        welcome = await receive_json(admin)
        assert (welcome["admin"], welcome["staff"]) == (True, True)
        welcome = await receive_json(moderator)
        assert (welcome["admin"], welcome["staff"]) == (False, True)
        welcome = await receive_json(customer)
        assert (welcome["admin"], welcome["staff"]) == (False, False)
        await wait_until(lambda: _subscribers(redis, ADMIN_ALERTS))
        await redis.publish(ADMIN_ALERTS, json.dumps({"type": "saga.failed", "order_id": "o-9"}))
        for staff in (admin, moderator):
            alert = await receive_json(staff)
            assert alert["channel"] == ADMIN_ALERTS
            assert alert["type"] == "saga.failed"
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(receive_json(customer), 0.5)


async def test_a_replica_refreshes_all_its_sockets_presence_in_batches(redis: Redis) -> None:
    presence = Presence(redis, ttl_s=30, key="presence:batch-test")
    sockets = [(f"user-{n % 700}", f"conn-{n}") for n in range(2_500)]
    await presence.touch_many(sockets, chunk=1000)
    assert await redis.zcard("presence:batch-test") == 2_500
    assert len(await presence.online_users()) == 700
    # Refreshing again moves every score forward and adds no member.
    before = dict(await redis.zrange("presence:batch-test", 0, -1, withscores=True))
    await asyncio.sleep(0.01)
    await presence.touch_many(sockets, chunk=1000)
    after = dict(await redis.zrange("presence:batch-test", 0, -1, withscores=True))
    assert after.keys() == before.keys()
    assert all(after[member] > before[member] for member in before)
    # Closed sockets are removed in batches too, and only the queued ones.
    for user_id, connection_id in sockets[:2_000]:
        presence.remove_later(user_id, connection_id)
    assert await presence.flush_removals(chunk=1000) == 2_000
    assert await presence.flush_removals() == 0
    assert await redis.zcard("presence:batch-test") == 500


async def test_presence_counts_a_user_once_across_tabs_and_replicas(
    replicas: list[Replica], tokens: Tokens, redis: Redis
) -> None:
    presence = Presence(redis, ttl_s=30)
    async with connect(replicas[0], tokens.user("erin")) as tab1:
        await receive_json(tab1)
        async with connect(replicas[1], tokens.user("erin")) as tab2:
            await receive_json(tab2)
            assert await presence.online_users() == ["erin"]
        await wait_until(lambda: _online(presence, ["erin"]))
    await wait_until(lambda: _online(presence, []))


async def _online(presence: Presence, expected: list[str]) -> bool:
    return await presence.online_users() == expected


async def test_admin_presence_api_lists_online_users(
    replicas: list[Replica], tokens: Tokens
) -> None:
    async with connect(replicas[0], tokens.user("frank")) as socket:
        await receive_json(socket)
        async with httpx.AsyncClient(base_url=replicas[1].url) as client:
            denied = await client.get(
                "/api/v1/admin/presence",
                headers={"Authorization": f"Bearer {tokens.user('frank')}"},
            )
            allowed = await client.get(
                "/api/v1/admin/presence",
                headers={"Authorization": f"Bearer {tokens.user('mod', 'moderator')}"},
            )
    assert denied.status_code == 403
    assert allowed.status_code == 200
    assert allowed.json() == {"count": 1, "user_ids": ["frank"]}


async def test_socket_is_closed_when_its_token_expires(
    replicas: list[Replica], tokens: Tokens
) -> None:
    async with connect(replicas[0], tokens.user("gina", ttl=2)) as socket:
        await receive_json(socket)
        assert await closed_with(socket) == 4401


async def test_idle_socket_is_closed(redis_url: str, tokens: Tokens) -> None:
    from .conftest import replica_settings, start_replica

    replica = start_replica(
        replica_settings(redis_url, idle_timeout_s=1.0, heartbeat_interval_s=0.3), tokens
    )
    try:
        async with connect(replica, tokens.user("hank")) as socket:
            assert await closed_with(socket) == 4408
    finally:
        replica.stop()


async def test_a_slow_client_is_dropped_instead_of_buffering_without_limit() -> None:
    connection = Connection(
        user_id="slow", is_staff=False, expires_at=datetime.now(UTC), queue_size=3
    )
    hub = Hub()
    hub._by_user["slow"].add(connection)  # registered without a channel layer
    for n in range(10):
        await hub.deliver(user_channel("slow"), {"n": n})
    assert connection.overflowed
    assert connection.queue.qsize() == 1
    assert connection.queue.get_nowait() is None  # the sender's signal to close (4429)


async def test_presence_entries_of_a_killed_replica_expire(
    redis_url: str, redis: Redis, tokens: Tokens, tmp_path: Any
) -> None:
    port = free_port()
    env = {
        "WS_GATEWAY_PORT": str(port),
        "WS_GATEWAY_REDIS_URL": redis_url,
        "WS_GATEWAY_PRESENCE_TTL_S": "1.5",
        "STOREFRONT_JWT_ISSUER": ISSUER,
        "STOREFRONT_JWT_AUDIENCE": AUDIENCE,
        # The replica must trust the test tokens: serve a JWKS for it.
        "STOREFRONT_JWKS_URL": await _serve_jwks(tokens),
    }
    process = ManagedProcess(
        "ws-replica",
        [sys.executable, "-m", "ws_gateway_service", "serve"],
        env=env,
        log_file=tmp_path / "replica.log",
    ).start()
    presence = Presence(redis, ttl_s=1.5)
    try:
        replica = Replica(f"http://127.0.0.1:{port}", None, None)  # type: ignore[arg-type]

        async def up() -> bool:
            try:
                async with httpx.AsyncClient() as client:
                    return (await client.get(f"{replica.url}/health/live")).status_code == 200
            except httpx.HTTPError:
                return False

        await wait_until(up, timeout=30)
        socket = await connect(replica, tokens.user("ivan"))
        await receive_json(socket)
        assert await presence.online_users() == ["ivan"]
        process.kill()
        await wait_until(lambda: _online(presence, []), timeout=10)
    finally:
        process.stop()
        _JWKS_SERVER.pop().should_exit = True


_JWKS_SERVER: list[Any] = []


async def _serve_jwks(tokens: Tokens) -> str:
    import threading

    from fastapi import FastAPI

    from jwt_core_lib import jwks_document

    app = FastAPI()

    @app.get("/.well-known/jwks.json")
    async def jwks() -> dict[str, Any]:
        return jwks_document([tokens.key])

    port = free_port()
    server = local_server(app, port)  # keep-alive outlasts the JWKS client's pool expiry
    threading.Thread(target=server.run, daemon=True).start()
    _JWKS_SERVER.append(server)
    while not server.started:
        await asyncio.sleep(0.05)
    return f"http://127.0.0.1:{port}/.well-known/jwks.json"


async def test_open_sockets_are_counted_on_metrics(replicas: list[Replica], tokens: Tokens) -> None:
    # The signal operators watch and the production autoscaler scales on
    # (docs/operations.md, docs/capacity.md): `ws_open_sockets`, per process.
    async def open_sockets() -> float:
        async with httpx.AsyncClient(base_url=replicas[0].url) as client:
            text = (await client.get("/metrics")).text
        (value,) = [
            float(line.split()[1])
            for line in text.splitlines()
            if line.startswith("ws_open_sockets ")
        ]
        return value

    async def reaches(expected: float) -> bool:
        return await open_sockets() == expected

    await wait_until(lambda: reaches(0))
    async with (
        connect(replicas[0], tokens.user("dora")) as first,
        connect(replicas[0], tokens.user("erin")) as second,
    ):
        await receive_json(first)
        await receive_json(second)
        await wait_until(lambda: reaches(2))
    await wait_until(lambda: reaches(0))


async def _pinged(socket: Any) -> None:
    while json.loads(await asyncio.wait_for(socket.recv(), 5)).get("type") != "ping":
        pass


async def test_every_socket_is_pinged_each_interval_also_after_others_closed(
    replicas: list[Replica], tokens: Tokens
) -> None:
    # Heartbeat every 0.5 s here, spread over five ticks: each socket is due in one.
    async with contextlib.AsyncExitStack() as sockets:
        opened = [
            await sockets.enter_async_context(connect(replicas[0], tokens.user(f"pinged-{n}")))
            for n in range(12)
        ]
        await asyncio.gather(*(_pinged(socket) for socket in opened))
        for socket in opened[:6]:
            await socket.close()
        await asyncio.gather(*(_pinged(socket) for socket in opened[6:]))
        await asyncio.gather(*(_pinged(socket) for socket in opened[6:]))


def test_the_hub_keeps_each_socket_in_exactly_one_heartbeat_tick() -> None:
    hub = Hub(heartbeat_slots=5)
    connections = [
        Connection(user_id=f"u{n}", is_staff=False, expires_at=datetime.now(UTC), queue_size=3)
        for n in range(40)
    ]
    for connection in connections:  # as register does, without a channel layer
        hub._by_slot[connection.slot(hub.heartbeat_slots)].add(connection)
    ticks = [hub.due(slot) for slot in range(5)]
    assert sorted(c.id for tick in ticks for c in tick) == sorted(c.id for c in connections)
    assert all(c.slot(5) == slot for slot, tick in enumerate(ticks) for c in tick)
