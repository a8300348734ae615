"""A JWKS client: cached keys, refresh on an unknown ``kid``, and stale keys while auth is down."""

import asyncio
import logging
import time
from collections.abc import Callable

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from jwt_core_lib.errors import KeysUnavailableError, UnknownKeyError
from jwt_core_lib.keys import public_key_from_jwk

__all__ = ["JWKSClient"]

logger = logging.getLogger(__name__)


class JWKSClient:
    """Fetches auth's ``/.well-known/jwks.json`` and answers keys by ``kid``.

    Keys are cached for ``cache_ttl_s``. An unknown ``kid`` triggers a refresh (key
    rotation needs no restart), at most once per ``min_refresh_interval_s`` so that
    tokens with made-up ``kid`` values cannot turn every request into a fetch. When
    auth cannot be reached, the last keys keep working; only a cold cache fails (503).
    """

    def __init__(
        self,
        *,
        url: str,
        http_client: httpx.AsyncClient,
        cache_ttl_s: float = 300.0,
        min_refresh_interval_s: float = 5.0,
        fetch_timeout_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._http = http_client
        self._cache_ttl_s = cache_ttl_s
        self._min_refresh_interval_s = min_refresh_interval_s
        self._fetch_timeout_s = fetch_timeout_s
        self._clock = clock
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._fetched_at: float | None = None
        self._last_attempt: float | None = None
        self._lock = asyncio.Lock()

    async def get_key(self, kid: str) -> Ed25519PublicKey:
        if self._is_fresh() and kid in self._keys:
            return self._keys[kid]
        await self._refresh(force=kid not in self._keys)
        try:
            return self._keys[kid]
        except KeyError:
            if self._fetched_at is None:
                raise KeysUnavailableError() from None
            raise UnknownKeyError() from None

    def _is_fresh(self) -> bool:
        return self._fetched_at is not None and self._clock() - self._fetched_at < self._cache_ttl_s

    async def _refresh(self, *, force: bool) -> None:
        # One fetch at a time; callers that waited see its result instead of fetching again.
        async with self._lock:
            now = self._clock()
            if not force and self._is_fresh():
                return
            if (
                self._last_attempt is not None
                and now - self._last_attempt < self._min_refresh_interval_s
            ):
                return
            self._last_attempt = now
            try:
                response = await self._http.get(self.url, timeout=self._fetch_timeout_s)
                response.raise_for_status()
                document = response.json()
                keys = {
                    str(jwk["kid"]): public_key_from_jwk(jwk)
                    for jwk in document["keys"]
                    if _is_usable(jwk)
                }
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                # Keep serving with the keys we have; the next attempt is rate-limited.
                logger.warning("jwks_refresh_failed url=%s error=%r", self.url, exc)
                return
            self._keys = keys
            self._fetched_at = self._clock()


def _is_usable(jwk: object) -> bool:
    if not isinstance(jwk, dict) or "kid" not in jwk:
        return False
    try:
        public_key_from_jwk(jwk)
    except (ValueError, KeyError, TypeError):
        return False
    return True
