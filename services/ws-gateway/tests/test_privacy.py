"""An erased user's live sessions: presence reported to auth's export, then dropped and
every socket closed (4401) on every replica from ``user.erased``; the revoked token
cannot open a new one."""

import uuid

import httpx
from redis.asyncio import Redis

from storefront_kit.events import EventEnvelope
from storefront_kit.revocation import revoke_subject
from storefront_stack.keys import ServiceKeys
from ws_gateway_service.events import USERS_STREAM
from ws_gateway_service.service.presence import PRESENCE_KEY

from .conftest import Replica, Tokens, replica_settings, start_replica, wait_until
from .test_ws import closed_with, connect, receive_json


async def test_an_erased_users_sockets_close_everywhere_and_presence_goes(
    redis_url: str, tokens: Tokens, redis: Redis
) -> None:
    keys = ServiceKeys.generate()
    replicas: list[Replica] = [
        start_replica(
            replica_settings(
                redis_url,
                heartbeat_interval_s=0.5,
                service_token_callers={"auth": [keys["auth"].x]},
            ),
            tokens,
        )
        for _ in range(2)
    ]
    user, other = str(uuid.uuid4()), str(uuid.uuid4())
    auth_token = {"Authorization": f"Bearer {keys.token('auth', 'ws-gateway')}"}
    path = f"/internal/ws-gateway/users/{user}/presence"
    try:
        async with (
            connect(replicas[0], tokens.user(user)) as first,
            connect(replicas[1], tokens.user(user)) as second,
            connect(replicas[1], tokens.user(other)) as bystander,
        ):
            for socket in (first, second, bystander):
                assert (await receive_json(socket))["type"] == "welcome"
            async with httpx.AsyncClient(base_url=replicas[0].url) as client:

                async def both_online() -> bool:
                    answer = await client.get(path, headers=auth_token)
                    return bool(answer.json() == {"online": True, "connections": 2})

                await wait_until(both_online)
                assert (await client.get(path, headers=auth_token)).status_code == 200
                user_token = {"Authorization": f"Bearer {tokens.user(user)}"}
                assert (await client.get(path, headers=user_token)).status_code == 401

                erased = EventEnvelope.new(
                    type="user.erased", source="auth", data={"user_id": user}
                )
                await redis.xadd(USERS_STREAM, erased.to_stream_fields())  # type: ignore[arg-type]

                assert await closed_with(first) == 4401
                assert await closed_with(second) == 4401

                async def gone() -> bool:
                    members = await redis.zrange(PRESENCE_KEY, 0, -1)
                    return not any(m.decode().startswith(user) for m in members)

                await wait_until(gone)
                assert user not in str(await redis.zrange(PRESENCE_KEY, 0, -1))
                answer = await client.get(path, headers=auth_token)
                assert answer.json() == {"online": False, "connections": 0}
            # The bystander's socket is untouched.
            await redis.publish(f"ws.user.{other}", '{"type": "order.status_changed"}')
            assert (await receive_json(bystander))["type"] == "order.status_changed"
        # Auth marked the token revoked: it opens no new socket.
        await revoke_subject(redis, user, ttl_s=60)
        async with connect(replicas[0], tokens.user(user)) as again:
            assert await closed_with(again) == 4401
    finally:
        for replica in replicas:
            replica.stop()
