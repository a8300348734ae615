"""Token wiring every service shares: user tokens from auth's JWKS, service tokens per audience.

``jwt_core_lib`` reads no configuration; this module binds it to
:class:`~storefront_kit.settings.PlatformSettings`. A service builds a
:class:`ServiceSecurity` in its lifespan (``app.state.security``) and uses the
dependencies below in its routes.
"""

from dataclasses import dataclass
from typing import Annotated

import httpx
from fastapi import Depends

from jwt_core_lib import (
    SERVICE,
    JWKSClient,
    JWTBearer,
    ServiceAuth,
    ServiceTokenAuth,
    ServiceTokenMinter,
    SigningKey,
    StaticKeySource,
    TokenClaims,
    TokenIssuer,
    TokenVerifier,
    require_roles,
)
from storefront_kit.logging import get_logger
from storefront_kit.settings import PLACEHOLDER_SECRETS, PlatformSettings

logger = get_logger(__name__)

__all__ = [
    "AdminUser",
    "CurrentUser",
    "ServiceCaller",
    "ServiceSecurity",
    "StaffUser",
    "build_security",
]


@dataclass
class ServiceSecurity:
    """Verifiers and the service-token minter of one service."""

    user_verifier: TokenVerifier
    service_verifier: TokenVerifier
    minter: ServiceTokenMinter

    def auth_for(self, audience: str) -> httpx.Auth:
        """httpx auth that attaches a fresh service token for ``audience`` to each request."""
        return ServiceTokenAuth(self.minter, audience)


def build_security(
    platform: PlatformSettings, *, service_name: str, http_client: httpx.AsyncClient
) -> ServiceSecurity:
    """User tokens are checked against auth's JWKS; service tokens against the platform key."""
    pem = platform.service_token_key.get_secret_value()
    if pem.strip().lower() in PLACEHOLDER_SECRETS:
        # Development without a configured key: this service starts, but its internal
        # calls are refused by the others. Production settings refuse placeholders.
        logger.warning("service_token_key_missing", service=service_name)
        service_key = SigningKey.generate()
    else:
        service_key = SigningKey.from_pem(pem)
    jwks = JWKSClient(url=platform.jwks_url, http_client=http_client)
    return ServiceSecurity(
        user_verifier=TokenVerifier(
            key_source=jwks, issuer=platform.jwt_issuer, audience=platform.jwt_audience
        ),
        service_verifier=TokenVerifier(
            key_source=StaticKeySource([service_key]),
            issuer=platform.service_token_issuer,
            audience=service_name,
            token_use=SERVICE,
        ),
        minter=ServiceTokenMinter(
            issuer=TokenIssuer(signing_key=service_key, issuer=platform.service_token_issuer),
            service_name=service_name,
        ),
    )


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
"""Another service, with a service token minted for this service's audience."""
