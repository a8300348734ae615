"""FastAPI dependencies: bearer tokens, roles, and service-only routes."""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from jwt_core_lib.errors import (
    CallerNotAllowedError,
    InsufficientRoleError,
    InvalidTokenError,
    MissingTokenError,
)
from jwt_core_lib.tokens import TokenClaims
from jwt_core_lib.verify import TokenVerifier

__all__ = [
    "ALLOWED_CALLERS",
    "JWTBearer",
    "ServiceAuth",
    "VerifierRef",
    "bearer_token",
    "require_callers",
    "require_roles",
]

ALLOWED_CALLERS = "allowed_callers"
"""Attribute of a :func:`require_callers` dependency naming the callers it lets through."""

# Shows the "Authorize" button in OpenAPI; the checks themselves are ours.
_scheme = HTTPBearer(
    auto_error=False, description="An access token from `/api/v1/auth/otp/verify`."
)

VerifierRef = TokenVerifier | Callable[[Request], TokenVerifier]
"""A verifier, or how to find one per request (e.g. on ``app.state``, built in the lifespan)."""


def bearer_token(credentials: HTTPAuthorizationCredentials | None) -> str:
    """The token of an ``Authorization: Bearer`` header, or :class:`MissingTokenError`."""
    if credentials is None:
        raise MissingTokenError()
    if credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise InvalidTokenError("The Authorization header must be 'Bearer <token>'.")
    return credentials.credentials


def _state_lookup(path: str) -> Callable[[Request], TokenVerifier]:
    parts = path.split(".")

    def lookup(request: Request) -> TokenVerifier:
        value: Any = request.app.state
        for part in parts:
            value = getattr(value, part)
        if not isinstance(value, TokenVerifier):
            raise TypeError(f"app.state.{path} is not a TokenVerifier")
        return value

    return lookup


class _VerifyingDependency:
    def __init__(self, verifier: VerifierRef) -> None:
        self._verifier = verifier

    @classmethod
    def from_state(cls, path: str) -> Any:
        """Use the verifier at ``app.state.<path>`` (dotted), resolved per request."""
        return cls(_state_lookup(path))

    def verifier(self, request: Request) -> TokenVerifier:
        if isinstance(self._verifier, TokenVerifier):
            return self._verifier
        return self._verifier(request)

    async def __call__(
        self,
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_scheme)],
    ) -> TokenClaims:
        return await self.verifier(request).verify(bearer_token(credentials))


class JWTBearer(_VerifyingDependency):
    """Dependency giving the :class:`TokenClaims` of a valid user access token (else 401)."""


class ServiceAuth(_VerifyingDependency):
    """Dependency for ``/internal/*``: only service tokens minted for this service's audience.

    Give it a :class:`~jwt_core_lib.verify.ServiceTokenVerifier` (callers' keys,
    ``aud`` = this service). User tokens fail on key and ``token_use``; service tokens
    for another service fail on ``aud``. Which callers a route accepts is
    :func:`require_callers`' business.
    """


def require_roles(bearer: JWTBearer, *roles: str) -> Callable[..., Awaitable[TokenClaims]]:
    """A dependency that lets through tokens carrying any of ``roles`` (403 otherwise)."""
    if not roles:
        raise ValueError("require_roles needs at least one role")

    async def dependency(claims: Annotated[TokenClaims, Depends(bearer)]) -> TokenClaims:
        if not claims.has_role(*roles):
            raise InsufficientRoleError(f"This needs one of the roles: {', '.join(roles)}.")
        return claims

    return dependency


def require_callers(
    service_auth: ServiceAuth, *callers: str
) -> Callable[..., Awaitable[TokenClaims]]:
    """A dependency that lets through service tokens whose issuer is one of ``callers``.

    A valid token from any other service is a 403 (:class:`CallerNotAllowedError`). The
    dependency carries ``allowed_callers`` (:data:`ALLOWED_CALLERS`) so that an app's
    routes can be audited for the callers each one accepts.
    """
    if not callers:
        raise ValueError("require_callers needs at least one caller")
    allowed = frozenset(callers)

    async def dependency(claims: Annotated[TokenClaims, Depends(service_auth)]) -> TokenClaims:
        if claims.issuer not in allowed or claims.subject != claims.issuer:
            raise CallerNotAllowedError(f"Service {claims.issuer!r} may not call this route.")
        return claims

    setattr(dependency, ALLOWED_CALLERS, allowed)
    return dependency
