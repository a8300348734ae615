"""Issuing tokens and the claims a verified token carries."""

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from jwt_core_lib.keys import ALGORITHM, SigningKey

__all__ = ["ACCESS", "SERVICE", "TokenClaims", "TokenIssuer"]

ACCESS = "access"
"""``token_use`` of a user's access token."""
SERVICE = "service"
"""``token_use`` of a service-to-service token."""


@dataclass(frozen=True)
class TokenClaims:
    """What a verified token says: who, for whom, with which roles, until when."""

    subject: str
    issuer: str
    audience: str
    roles: tuple[str, ...]
    token_id: str
    token_use: str
    issued_at: datetime
    expires_at: datetime
    key_id: str
    extra: Mapping[str, Any] = field(default_factory=dict)

    def has_role(self, *roles: str) -> bool:
        """True when the token carries at least one of ``roles``."""
        return any(role in self.roles for role in roles)


class TokenIssuer:
    """Signs tokens with one key for one issuer (auth for users, each service for itself)."""

    def __init__(self, *, signing_key: SigningKey, issuer: str) -> None:
        self.signing_key = signing_key
        self.issuer = issuer

    def issue(
        self,
        *,
        subject: str,
        audience: str,
        ttl: timedelta,
        roles: Iterable[str] = (),
        token_use: str = ACCESS,
        not_before: datetime | None = None,
        extra: Mapping[str, Any] | None = None,
        now: datetime | None = None,
    ) -> str:
        """A signed compact JWT; ``extra`` claims never override the registered ones."""
        issued = now or datetime.now(UTC)
        claims: dict[str, Any] = dict(extra or {})
        claims.update(
            {
                "iss": self.issuer,
                "sub": subject,
                "aud": audience,
                "iat": int(issued.timestamp()),
                "exp": int((issued + ttl).timestamp()),
                "jti": secrets.token_urlsafe(16),
                "roles": sorted(set(roles)),
                "token_use": token_use,
            }
        )
        if not_before is not None:
            claims["nbf"] = int(not_before.timestamp())
        return jwt.encode(
            claims,
            self.signing_key.private_key,
            algorithm=ALGORITHM,
            headers={"kid": self.signing_key.kid, "typ": "JWT"},
        )
