"""Access tokens of erased users: refused by every service before they expire.

Access tokens are stateless (15 minutes, checked against auth's JWKS), so erasing a
user cannot take back one already issued. Auth marks the subject revoked in Redis
(:func:`revoke_subject`, for as long as an access token lives) in the transaction of
the erasure, and every service's user-token verifier asks Redis about each token it
accepts (:class:`RevocationCheckingVerifier`, installed by
:func:`storefront_kit.app.create_service_app` on every service that has
``app.state.redis``). The key holds a one-way digest of the subject, never the user
id itself: a Redis dump does not name the erased user.

Redis unreachable: the check lets the token through and logs
``revocation_check_unavailable`` (the token still expires within its quarter hour).
"""

import hashlib

from redis.asyncio import Redis
from redis.exceptions import RedisError

from jwt_core_lib import InvalidTokenError, TokenClaims, TokenVerifier
from storefront_kit.logging import get_logger

__all__ = [
    "REVOKED_PREFIX",
    "RevocationCheckingVerifier",
    "TokenRevoked",
    "revoke_subject",
    "revoked_key",
    "subject_digest",
]

logger = get_logger(__name__)

REVOKED_PREFIX = "storefront:revoked:"
"""Redis key prefix of a revoked subject (followed by :func:`subject_digest`)."""


class TokenRevoked(InvalidTokenError):
    """The token's subject was erased: 401 like any other invalid token."""


def subject_digest(subject: str) -> str:
    """A one-way digest of a token subject (SHA-256, domain-separated)."""
    return hashlib.sha256(b"storefront-revoked-subject\x00" + subject.encode()).hexdigest()


def revoked_key(subject: str) -> str:
    """The Redis key that marks ``subject`` revoked."""
    return REVOKED_PREFIX + subject_digest(subject)


async def revoke_subject(redis: Redis, subject: str, *, ttl_s: int) -> None:
    """Refuse every access token of ``subject`` for ``ttl_s`` seconds (their lifetime)."""
    await redis.set(revoked_key(subject), "1", ex=max(1, ttl_s))


class RevocationCheckingVerifier(TokenVerifier):
    """A :class:`TokenVerifier` that also refuses tokens whose subject is revoked."""

    def __init__(self, inner: TokenVerifier, redis: Redis) -> None:
        super().__init__(
            key_source=inner.key_source,
            issuer=inner.issuer,
            audience=inner.audience,
            token_use=inner.token_use,
            leeway_s=inner.leeway_s,
            cache_size=0,
        )
        self.inner = inner
        self._redis = redis

    async def verify(self, token: str) -> TokenClaims:
        claims = await self.inner.verify(token)
        try:
            revoked = await self._redis.exists(revoked_key(claims.subject))
        except RedisError as exc:
            logger.warning("revocation_check_unavailable", error=type(exc).__name__)
            return claims
        if revoked:
            raise TokenRevoked("The token was revoked.")
        return claims
