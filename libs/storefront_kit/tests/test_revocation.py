"""Access tokens of erased users are refused by the verifier every service uses."""

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from redis.asyncio import Redis

from jwt_core_lib import SigningKey, StaticKeySource, TokenError, TokenIssuer, TokenVerifier
from storefront_kit.breaker import Breaker
from storefront_kit.revocation import (
    RevocationCheckingVerifier,
    TokenRevoked,
    revoke_subject,
    revoked_key,
)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


def _verifier(key: SigningKey, redis: Redis) -> RevocationCheckingVerifier:
    inner = TokenVerifier(key_source=StaticKeySource([key]), issuer="auth", audience="shop")
    return RevocationCheckingVerifier(inner, redis)


def _token(key: SigningKey, subject: str) -> str:
    return TokenIssuer(signing_key=key, issuer="auth").issue(
        subject=subject, audience="shop", ttl=timedelta(minutes=5), roles=("customer",)
    )


async def test_a_revoked_subjects_tokens_are_refused_and_others_are_not(redis: Redis) -> None:
    key = SigningKey.generate()
    verifier = _verifier(key, redis)
    erased, kept = _token(key, "user-erased"), _token(key, "user-kept")
    assert (await verifier.verify(erased)).subject == "user-erased"  # remembered by the inner

    await revoke_subject(redis, "user-erased", ttl_s=60)

    with pytest.raises(TokenRevoked) as refused:
        await verifier.verify(erased)
    assert refused.value.status_code == 401
    assert (await verifier.verify(kept)).subject == "user-kept"
    # The key names a digest, not the subject; it lives as long as an access token.
    assert "user-erased" not in revoked_key("user-erased")
    assert "user-erased" not in str(await redis.keys("*"))
    assert 0 < await redis.ttl(revoked_key("user-erased")) <= 60


async def test_a_forged_token_is_still_refused_before_any_revocation_check(redis: Redis) -> None:
    verifier = _verifier(SigningKey.generate(), redis)
    with pytest.raises(TokenError):
        await verifier.verify(_token(SigningKey.generate(), "mallory"))


async def test_an_unreachable_redis_lets_a_valid_token_through() -> None:
    key = SigningKey.generate()
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    try:
        claims = await _verifier(key, dead).verify(_token(key, "user-1"))
    finally:
        await dead.aclose()
    assert claims.subject == "user-1"


@pytest.fixture
async def frozen_redis() -> AsyncIterator[Redis]:
    """A server that accepts connections and never answers: a frozen Redis."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_timeout=5)
    yield client
    await client.aclose()
    for writer in held:
        writer.close()
        await writer.wait_closed()
    server.close()
    await server.wait_closed()


async def test_a_frozen_redis_costs_a_request_the_check_deadline_not_the_socket_timeout(
    frozen_redis: Redis,
) -> None:
    key = SigningKey.generate()
    inner = TokenVerifier(key_source=StaticKeySource([key]), issuer="auth", audience="shop")
    verifier = RevocationCheckingVerifier(inner, frozen_redis, timeout_s=0.1)
    started = time.monotonic()
    claims = await verifier.verify(_token(key, "user-1"))
    waited = time.monotonic() - started
    assert claims.subject == "user-1"
    assert waited < 5  # the socket timeout was not waited out (the deadline is 0.1 s)


async def test_an_open_redis_breaker_skips_the_check_without_asking_redis(redis: Redis) -> None:
    key = SigningKey.generate()
    breaker = Breaker("redis", failure_threshold=1, reset_timeout_s=60)
    inner = TokenVerifier(key_source=StaticKeySource([key]), issuer="auth", audience="shop")
    verifier = RevocationCheckingVerifier(inner, redis, breaker=breaker)
    await revoke_subject(redis, "user-erased", ttl_s=60)
    with pytest.raises(TokenRevoked):
        await verifier.verify(_token(key, "user-erased"))

    breaker.trip()  # the watch found Redis down: nobody asks it until its ping answers
    assert (await verifier.verify(_token(key, "user-erased"))).subject == "user-erased"
    breaker.ping_succeeded()
    with pytest.raises(TokenRevoked):
        await verifier.verify(_token(key, "user-erased"))
