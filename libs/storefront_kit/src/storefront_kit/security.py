"""Token wiring every service shares: user tokens from auth's JWKS, service tokens per caller.

``jwt_core_lib`` reads no configuration; this module binds it to the settings. A
service builds a :class:`ServiceSecurity` in its lifespan (``app.state.security``) and
uses the dependencies below in its routes.

Service-to-service trust: each service signs the tokens it sends with its own key
(``<PREFIX>_SERVICE_TOKEN_KEY``; ``iss`` = itself, ``aud`` = the callee) and knows only
the public keys of the services that call it (``<PREFIX>_SERVICE_TOKEN_CALLERS``).
Every ``/internal/*`` route names the callers it accepts with :func:`allow_callers`.
"""

from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Annotated, Any

import httpx
from fastapi import Depends, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from jwt_core_lib import (
    ALLOWED_CALLERS,
    CallerKeys,
    JWKSClient,
    JWTBearer,
    ServiceAuth,
    ServiceTokenAuth,
    ServiceTokenMinter,
    ServiceTokenVerifier,
    SigningKey,
    TokenClaims,
    TokenIssuer,
    TokenVerifier,
    public_key_from_x,
    require_callers,
    require_roles,
)
from storefront_kit.health import HealthCheck
from storefront_kit.logging import get_logger
from storefront_kit.settings import ServiceSettings, is_placeholder

logger = get_logger(__name__)

__all__ = [
    "INTERNAL_PREFIX",
    "SERVICE_TOKEN_TTL",
    "AdminUser",
    "CurrentUser",
    "MissingSecret",
    "ServiceCaller",
    "ServiceSecurity",
    "StaffUser",
    "allow_callers",
    "build_security",
    "route_callers",
    "service_callers_check",
    "service_signing_key",
]

INTERNAL_PREFIX = "/internal/"

SERVICE_TOKEN_TTL = 60
"""Seconds a service token is valid (the minter reuses one for most of that)."""


class MissingSecret(RuntimeError):
    """A service was started without a secret it needs to sign (outside tests)."""


@dataclass
class ServiceSecurity:
    """Verifiers and the service-token minter of one service."""

    user_verifier: TokenVerifier
    service_verifier: ServiceTokenVerifier
    minter: ServiceTokenMinter

    def auth_for(self, audience: str) -> httpx.Auth:
        """httpx auth that attaches a fresh service token for ``audience`` to each request."""
        return ServiceTokenAuth(self.minter, audience)

    def token_source(self, audience: str) -> Callable[[], str]:
        """A callable giving a valid service token for ``audience`` each time it is called
        (the minter reuses one for most of its life): the ``bearer_token`` of
        :func:`storefront_kit.http.create_aiohttp_session`."""
        return partial(self.minter.token_for, audience)

    @classmethod
    def create(
        cls,
        *,
        service_name: str,
        service_key: SigningKey,
        callers: Mapping[str, Iterable[Any]],
        user_verifier: TokenVerifier,
    ) -> "ServiceSecurity":
        """Security from keys already loaded (``callers``: public keys or signing keys)."""
        return cls(
            user_verifier=user_verifier,
            service_verifier=ServiceTokenVerifier(
                callers=CallerKeys(callers), audience=service_name
            ),
            minter=ServiceTokenMinter(
                issuer=TokenIssuer(signing_key=service_key, issuer=service_name),
                service_name=service_name,
                ttl=timedelta(seconds=SERVICE_TOKEN_TTL),
            ),
        )


def service_signing_key(settings: ServiceSettings) -> SigningKey:
    """The service's own key; without one only a test run gets a throwaway key."""
    if not is_placeholder(settings.service_token_key):
        return SigningKey.from_pem(settings.service_token_key.get_secret_value())
    name = settings.env_name("service_token_key")
    if settings.platform.environment != "test":
        raise MissingSecret(
            f"{name} must be set to this service's own Ed25519 private key (PEM); "
            "`make run` and `make env` generate one per service"
        )
    logger.warning("service_token_key_missing_test_key", variable=name)
    return SigningKey.generate()


def build_security(settings: ServiceSettings, *, http_client: httpx.AsyncClient) -> ServiceSecurity:
    """User tokens are checked against auth's JWKS; service tokens against the callers' keys."""
    platform = settings.platform
    return ServiceSecurity.create(
        service_name=settings.service_name,
        service_key=service_signing_key(settings),
        callers={
            caller: [public_key_from_x(x) for x in keys]
            for caller, keys in settings.service_token_callers.items()
        },
        user_verifier=TokenVerifier(
            key_source=JWKSClient(url=platform.jwks_url, http_client=http_client),
            issuer=platform.jwt_issuer,
            audience=platform.jwt_audience,
        ),
    )


def _callers_of(dependant: Dependant) -> frozenset[str] | None:
    for sub in dependant.dependencies:
        allowed = getattr(sub.call, ALLOWED_CALLERS, None)
        if isinstance(allowed, frozenset):
            return allowed
        found = _callers_of(sub)
        if found is not None:
            return found
    return None


def route_callers(app: FastAPI) -> dict[str, frozenset[str] | None]:
    """``METHOD path`` of each ``/internal/*`` route -> its accepted callers (None: undeclared)."""
    found: dict[str, frozenset[str] | None] = {}
    for route in _api_routes(app.routes):
        if route.path.startswith(INTERNAL_PREFIX):
            for method in sorted(route.methods or ()):
                found[f"{method} {route.path}"] = _callers_of(route.dependant)
    return found


def _api_routes(routes: Iterable[BaseRoute]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        else:
            # FastAPI keeps an included router as one entry (its routes carry its prefix).
            inner = getattr(route, "original_router", None)
            if inner is not None:
                yield from _api_routes(inner.routes)


def service_callers_check(app: FastAPI) -> HealthCheck:
    """Ready only if every internal route has at least one of its callers' keys configured.

    A route none of whose callers has a key can never be called: the service is up but
    cannot do its job (a rotation that withdrew a caller's last key, a missing setting).
    """
    routes = route_callers(app)

    async def probe() -> None:
        known = app.state.security.service_verifier.callers.callers
        orphans = [
            route for route, allowed in routes.items() if allowed is None or not allowed & known
        ]
        if orphans:
            raise LookupError(f"no caller key for {', '.join(orphans)}")

    return HealthCheck("service_tokens", probe)


# Resolved per request: the verifiers are built in the lifespan (or replaced by tests).
_bearer = JWTBearer.from_state("security.user_verifier")
_service = ServiceAuth.from_state("security.service_verifier")

CurrentUser = Annotated[TokenClaims, Depends(_bearer)]
"""Any authenticated user (access token)."""
AdminUser = Annotated[TokenClaims, Depends(require_roles(_bearer, "admin"))]
"""A user with the ``admin`` role."""
StaffUser = Annotated[TokenClaims, Depends(require_roles(_bearer, "admin", "moderator"))]
"""A user with ``admin`` or ``moderator`` (read-only staff views)."""
ServiceCaller = Annotated[TokenClaims, Depends(_service)]
"""Any service with a valid service token for this service (routes use :func:`allow_callers`)."""


def allow_callers(*callers: str) -> Callable[..., Awaitable[TokenClaims]]:
    """The dependency of an internal route: a service token from one of ``callers`` (else 403).

    Every ``/internal/*`` route takes one, so that it says who may call it::

        Orders = Annotated[TokenClaims, Depends(allow_callers("orders"))]

        @router.post("/reserve")
        async def reserve(caller: Orders) -> ...
    """
    return require_callers(_service, *callers)
