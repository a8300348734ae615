"""Asymmetric JWTs for the storefront platform.

- :class:`TokenIssuer` signs EdDSA (Ed25519) tokens with ``iss``, ``aud``, ``sub``,
  ``exp``, ``iat``, ``jti``, ``kid`` and ``roles``.
- :class:`TokenVerifier` checks them with the algorithm pinned, keys from a
  :class:`KeySource` (:class:`JWKSClient` for auth's JWKS, :class:`StaticKeySource`).
- :class:`JWTBearer`, :func:`require_roles` and :class:`ServiceAuth` are FastAPI
  dependencies; :class:`ServiceTokenMinter` and :class:`ServiceTokenAuth` make
  service-to-service calls.

The library reads no configuration: callers pass issuers, audiences and keys.
"""

from jwt_core_lib.dependencies import JWTBearer, ServiceAuth, bearer_token, require_roles
from jwt_core_lib.errors import (
    ExpiredTokenError,
    InsufficientRoleError,
    InvalidTokenError,
    KeysUnavailableError,
    MissingTokenError,
    TokenError,
    UnknownKeyError,
)
from jwt_core_lib.jwks import JWKSClient
from jwt_core_lib.keys import ALGORITHM, SigningKey, jwks_document, public_key_from_jwk
from jwt_core_lib.service import ServiceTokenAuth, ServiceTokenMinter
from jwt_core_lib.tokens import ACCESS, SERVICE, TokenClaims, TokenIssuer
from jwt_core_lib.verify import KeySource, StaticKeySource, TokenVerifier

__all__ = [
    "ACCESS",
    "ALGORITHM",
    "SERVICE",
    "ExpiredTokenError",
    "InsufficientRoleError",
    "InvalidTokenError",
    "JWKSClient",
    "JWTBearer",
    "KeySource",
    "KeysUnavailableError",
    "MissingTokenError",
    "ServiceAuth",
    "ServiceTokenAuth",
    "ServiceTokenMinter",
    "SigningKey",
    "StaticKeySource",
    "TokenClaims",
    "TokenError",
    "TokenIssuer",
    "TokenVerifier",
    "UnknownKeyError",
    "bearer_token",
    "jwks_document",
    "public_key_from_jwk",
    "require_roles",
]
