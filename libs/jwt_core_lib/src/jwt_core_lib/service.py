"""Service-to-service tokens: short-lived, minted by the caller for exactly one audience."""

import threading
import time
from collections.abc import Generator
from datetime import timedelta

import httpx

from jwt_core_lib.tokens import SERVICE, TokenIssuer

__all__ = ["ServiceTokenAuth", "ServiceTokenMinter"]


class ServiceTokenMinter:
    """Mints ``token_use=service`` tokens (``sub`` = this service, ``aud`` = the callee).

    Give it a :class:`TokenIssuer` holding this service's own key with ``issuer`` = this
    service's name: the callee checks that ``iss`` owns the signing key.

    Tokens are reused until shortly before they expire: signing is cheap, but there is
    no reason to sign for every call.
    """

    def __init__(
        self,
        *,
        issuer: TokenIssuer,
        service_name: str,
        ttl: timedelta = timedelta(seconds=60),
        renew_before: timedelta = timedelta(seconds=15),
    ) -> None:
        self.issuer = issuer
        self.service_name = service_name
        self.ttl = ttl
        self._renew_before_s = renew_before.total_seconds()
        self._cache: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def token_for(self, audience: str) -> str:
        """A valid service token for calling ``audience``."""
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(audience)
            if cached is not None and cached[1] - now > self._renew_before_s:
                return cached[0]
            token = self.issuer.issue(
                subject=self.service_name, audience=audience, ttl=self.ttl, token_use=SERVICE
            )
            self._cache[audience] = (token, now + self.ttl.total_seconds())
            return token


class ServiceTokenAuth(httpx.Auth):
    """httpx auth that sends a service token for one audience with every request."""

    def __init__(self, minter: ServiceTokenMinter, audience: str) -> None:
        self._minter = minter
        self._audience = audience

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._minter.token_for(self._audience)}"
        yield request
