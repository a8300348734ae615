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
It never makes a request wait for a Redis that does not answer: while the service's
Redis breaker is open (its dependency watch found Redis down) the check is skipped at
once, and otherwise it has :data:`CHECK_TIMEOUT_S` (one ``EXISTS`` takes well under a
millisecond; a frozen Redis would otherwise cost every request the socket timeout
until the watch knows).
"""

import asyncio
import hashlib

from redis.asyncio import Redis
from redis.exceptions import RedisError

from jwt_core_lib import InvalidTokenError, TokenClaims, TokenVerifier
from storefront_kit.breaker import Breaker
from storefront_kit.logging import get_logger

__all__ = [
    "CHECK_TIMEOUT_S",
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

CHECK_TIMEOUT_S = 0.2
"""How long one revocation check may wait for Redis before the token is let through."""


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

    def __init__(
        self,
        inner: TokenVerifier,
        redis: Redis,
        *,
        breaker: Breaker | None = None,
        timeout_s: float = CHECK_TIMEOUT_S,
    ) -> None:
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
        #: The service's Redis breaker (opened by its watch): open means skip the check.
        self.breaker = breaker
        self.timeout_s = timeout_s

    async def verify(self, token: str) -> TokenClaims:
        claims = await self.inner.verify(token)
        if self.breaker is not None and self.breaker.is_open:
            return claims  # Redis is known to be down: no request waits to find out again
        try:
            async with asyncio.timeout(self.timeout_s):
                revoked = await self._redis.exists(revoked_key(claims.subject))
        except (RedisError, TimeoutError) as exc:
            logger.warning("revocation_check_unavailable", error=type(exc).__name__)
            return claims
        if revoked:
            raise TokenRevoked("The token was revoked.")
        return claims
