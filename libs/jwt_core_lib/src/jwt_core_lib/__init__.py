"""Asymmetric JWTs for the storefront platform.

- :class:`TokenIssuer` signs EdDSA (Ed25519) tokens with ``iss``, ``aud``, ``sub``,
  ``exp``, ``iat``, ``jti``, ``kid`` and ``roles``.
- :class:`TokenVerifier` checks them with the algorithm pinned, keys from a
  :class:`KeySource` (:class:`JWKSClient` for auth's JWKS, :class:`StaticKeySource`).
- :class:`ServiceTokenVerifier` checks service tokens: each caller signs with its own
  key (:class:`CallerKeys` binds keys to callers), ``iss`` = caller, ``aud`` = callee.
- :class:`JWTBearer`, :func:`require_roles`, :class:`ServiceAuth` and
  :func:`require_callers` are FastAPI dependencies; :class:`ServiceTokenMinter` and
  :class:`ServiceTokenAuth` make service-to-service calls.

The library reads no configuration: callers pass issuers, audiences and keys.
"""

from jwt_core_lib.dependencies import (
    ALLOWED_CALLERS,
    JWTBearer,
    ServiceAuth,
    bearer_token,
    require_callers,
    require_roles,
)
from jwt_core_lib.errors import (
    CallerNotAllowedError,
    ExpiredTokenError,
    InsufficientRoleError,
    InvalidTokenError,
    KeysUnavailableError,
    MissingTokenError,
    TokenError,
    UnknownKeyError,
)
from jwt_core_lib.jwks import JWKSClient
from jwt_core_lib.keys import (
    ALGORITHM,
    SigningKey,
    jwks_document,
    key_id,
    public_key_from_jwk,
    public_key_from_x,
    public_x,
)
from jwt_core_lib.service import ServiceTokenAuth, ServiceTokenMinter
from jwt_core_lib.tokens import ACCESS, SERVICE, TokenClaims, TokenIssuer
from jwt_core_lib.verify import (
    CallerKeys,
    KeySource,
    ServiceTokenVerifier,
    StaticKeySource,
    TokenVerifier,
)

__all__ = [
    "ACCESS",
    "ALGORITHM",
    "ALLOWED_CALLERS",
    "SERVICE",
    "CallerKeys",
    "CallerNotAllowedError",
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
    "ServiceTokenVerifier",
    "SigningKey",
    "StaticKeySource",
    "TokenClaims",
    "TokenError",
    "TokenIssuer",
    "TokenVerifier",
    "UnknownKeyError",
    "bearer_token",
    "jwks_document",
    "key_id",
    "public_key_from_jwk",
    "public_key_from_x",
    "public_x",
    "require_callers",
    "require_roles",
]
