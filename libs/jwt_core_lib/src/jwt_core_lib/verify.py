"""Verifying tokens: algorithm, issuer, audience and token use come from the verifier."""

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Protocol

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from jwt_core_lib.errors import ExpiredTokenError, InvalidTokenError, UnknownKeyError
from jwt_core_lib.keys import ALGORITHM, SigningKey
from jwt_core_lib.tokens import ACCESS, TokenClaims

__all__ = ["KeySource", "StaticKeySource", "TokenVerifier"]

_REQUIRED = ["exp", "iat", "iss", "aud", "sub", "jti"]
_MAX_TOKEN_LENGTH = 8192


class KeySource(Protocol):
    """Where verification keys come from (a fixed set, or auth's JWKS)."""

    async def get_key(self, kid: str) -> Ed25519PublicKey:
        """The public key for ``kid``; raises :class:`UnknownKeyError` when there is none."""
        ...


class StaticKeySource:
    """A fixed set of keys: service tokens (one platform key) and tests."""

    def __init__(self, keys: Iterable[SigningKey | tuple[str, Ed25519PublicKey]]) -> None:
        self._keys: dict[str, Ed25519PublicKey] = {}
        for key in keys:
            if isinstance(key, SigningKey):
                self._keys[key.kid] = key.public_key
            else:
                self._keys[key[0]] = key[1]

    async def get_key(self, kid: str) -> Ed25519PublicKey:
        try:
            return self._keys[kid]
        except KeyError:
            raise UnknownKeyError() from None


class TokenVerifier:
    """Checks signature, ``iss``, ``aud``, ``exp``/``nbf``/``iat`` and ``token_use``."""

    def __init__(
        self,
        *,
        key_source: KeySource,
        issuer: str,
        audience: str,
        token_use: str = ACCESS,
        leeway_s: float = 10.0,
    ) -> None:
        self.key_source = key_source
        self.issuer = issuer
        self.audience = audience
        self.token_use = token_use
        self.leeway_s = leeway_s

    async def verify(self, token: str) -> TokenClaims:
        """The claims of a valid token; :class:`TokenError` subclasses otherwise."""
        if not token or len(token) > _MAX_TOKEN_LENGTH:
            raise InvalidTokenError("The token is malformed.")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidTokenError("The token is malformed.") from None
        # Pinned algorithm: a token naming another one (none, HS256...) is refused
        # before any key is looked at.
        if header.get("alg") != ALGORITHM:
            raise InvalidTokenError("The token's algorithm is not accepted.")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidTokenError("The token names no key.")
        key = await self.key_source.get_key(kid)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_s,
                options={"require": _REQUIRED, "strict_aud": True},
            )
        except jwt.ExpiredSignatureError:
            raise ExpiredTokenError() from None
        except jwt.ImmatureSignatureError:
            raise InvalidTokenError("The token is not valid yet.") from None
        except jwt.InvalidAudienceError:
            raise InvalidTokenError("The token is for another audience.") from None
        except jwt.InvalidIssuerError:
            raise InvalidTokenError("The token is from another issuer.") from None
        except jwt.PyJWTError:
            raise InvalidTokenError() from None
        if claims.get("token_use") != self.token_use:
            raise InvalidTokenError(f"A {self.token_use} token is required.")
        return _to_claims(claims, kid)


def _to_claims(claims: dict[str, Any], kid: str) -> TokenClaims:
    roles = claims.get("roles", [])
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise InvalidTokenError("The token's roles are malformed.")
    registered = {"iss", "sub", "aud", "iat", "exp", "nbf", "jti", "roles", "token_use"}
    return TokenClaims(
        subject=str(claims["sub"]),
        issuer=str(claims["iss"]),
        audience=str(claims["aud"]),
        roles=tuple(roles),
        token_id=str(claims["jti"]),
        token_use=str(claims["token_use"]),
        issued_at=datetime.fromtimestamp(int(claims["iat"]), UTC),
        expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
        key_id=kid,
        extra={k: v for k, v in claims.items() if k not in registered},
    )
