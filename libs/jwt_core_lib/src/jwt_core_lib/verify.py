"""Verifying tokens: algorithm, issuer, audience and token use come from the verifier.

User tokens have one issuer (auth) whose keys come from its JWKS. Service tokens have
one issuer per calling service: :class:`CallerKeys` binds each public key to the one
caller allowed to sign with it, and :class:`ServiceTokenVerifier` demands that a
token's ``iss`` is the owner of the key that signed it.
"""

import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Protocol

import jwt
from cachetools import TLRUCache
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from jwt_core_lib.errors import ExpiredTokenError, InvalidTokenError, UnknownKeyError
from jwt_core_lib.keys import ALGORITHM, SigningKey, key_id
from jwt_core_lib.tokens import ACCESS, SERVICE, TokenClaims

__all__ = [
    "CallerKeys",
    "KeySource",
    "ServiceTokenVerifier",
    "StaticKeySource",
    "TokenVerifier",
]

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


class CallerKeys:
    """The public keys of the services allowed to call one service, by caller name.

    A caller may have several keys (old and new during a rotation). A key belongs to
    exactly one caller: listing one key for two callers is refused, since a token
    signed with it could then claim to be either.
    """

    def __init__(self, callers: Mapping[str, Iterable[Ed25519PublicKey | SigningKey]]) -> None:
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._owners: dict[str, str] = {}
        for caller, keys in callers.items():
            for key in keys:
                public = key.public_key if isinstance(key, SigningKey) else key
                kid = key_id(public)
                owner = self._owners.setdefault(kid, caller)
                if owner != caller:
                    raise ValueError(f"one key is listed for both {owner!r} and {caller!r}")
                self._keys[kid] = public
        self.callers: frozenset[str] = frozenset(self._owners.values())
        """Callers with at least one key."""

    async def get_key(self, kid: str) -> Ed25519PublicKey:
        try:
            return self._keys[kid]
        except KeyError:
            raise UnknownKeyError() from None

    def owner(self, kid: str) -> str:
        """The caller that ``kid`` belongs to; :class:`UnknownKeyError` when none."""
        try:
            return self._owners[kid]
        except KeyError:
            raise UnknownKeyError() from None


class TokenVerifier:
    """Checks signature, ``iss``, ``aud``, ``exp``/``nbf``/``iat`` and ``token_use``.

    The same token comes back with every call of one client (a service token is reused
    for most of its minute, an access token for its quarter hour), so the claims of a
    verified token are remembered (``cache_size`` tokens, 0 turns this off) until it
    expires or for ``cache_ttl_s``, whichever is sooner. A remembered token is still
    refused once its key is no longer known (a key taken out of the JWKS). Only valid
    tokens are remembered: a forged one is checked, and refused, every time.
    """

    def __init__(
        self,
        *,
        key_source: KeySource,
        issuer: str,
        audience: str,
        token_use: str = ACCESS,
        leeway_s: float = 10.0,
        cache_size: int = 4096,
        cache_ttl_s: float = 60.0,
    ) -> None:
        self.key_source = key_source
        self.issuer = issuer
        self.audience = audience
        self.token_use = token_use
        self.leeway_s = leeway_s
        self._cache_ttl_s = cache_ttl_s
        self._verified: TLRUCache[str, tuple[TokenClaims, float]] | None = (
            TLRUCache(maxsize=cache_size, ttu=_valid_until, timer=time.time)
            if cache_size > 0
            else None
        )

    async def verify(self, token: str) -> TokenClaims:
        """The claims of a valid token; :class:`TokenError` subclasses otherwise."""
        if not token or len(token) > _MAX_TOKEN_LENGTH:
            raise InvalidTokenError("The token is malformed.")
        if self._verified is not None:
            remembered = self._verified.get(token)
            if remembered is not None:
                claims = remembered[0]
                await self.key_source.get_key(claims.key_id)  # still a known key?
                return claims
        claims = await self._verify(token)
        if self._verified is not None:
            expires = claims.expires_at.timestamp() + self.leeway_s
            self._verified[token] = (claims, min(expires, time.time() + self._cache_ttl_s))
        return claims

    async def _verify(self, token: str) -> TokenClaims:
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
        issuer = self._issuer_for(kid)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=issuer,
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

    def _issuer_for(self, kid: str) -> str:
        """The ``iss`` a token signed with ``kid`` must carry."""
        return self.issuer


class ServiceTokenVerifier(TokenVerifier):
    """Service tokens for one audience, each signed by its caller's own key.

    ``iss`` must name the caller that owns the signing key (a key listed for
    ``catalog`` cannot vouch for a token claiming to be ``orders``), ``aud`` this
    service and ``token_use`` ``service``. Tokens signed by a key no caller lists are
    refused as unknown (401), whoever they claim to be.
    """

    def __init__(
        self,
        *,
        callers: CallerKeys,
        audience: str,
        leeway_s: float = 10.0,
        cache_size: int = 4096,
        cache_ttl_s: float = 60.0,
    ) -> None:
        super().__init__(
            key_source=callers,
            issuer="",
            audience=audience,
            token_use=SERVICE,
            leeway_s=leeway_s,
            cache_size=cache_size,
            cache_ttl_s=cache_ttl_s,
        )
        self.callers = callers

    def _issuer_for(self, kid: str) -> str:
        return self.callers.owner(kid)


def _valid_until(_token: str, entry: tuple[TokenClaims, float], _now: float) -> float:
    return entry[1]


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
        # Read-only: remembered claims are shared by every request bearing the token.
        extra=MappingProxyType({k: v for k, v in claims.items() if k not in registered}),
    )
