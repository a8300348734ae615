"""Access tokens of erased users are refused by the verifier every service uses."""

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from redis.asyncio import Redis

from jwt_core_lib import SigningKey, StaticKeySource, TokenError, TokenIssuer, TokenVerifier
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
