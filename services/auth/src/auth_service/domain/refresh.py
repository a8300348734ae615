"""Refresh tokens: opaque random strings, stored only as SHA-256, rotated per use.

A family is one login. Each refresh spends the presented token and issues its child
in the same family; a spent (or revoked) token coming back means it was copied, so
the whole family is revoked (reuse detection).
"""

import enum
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

__all__ = [
    "MAX_REFRESH_TOKEN_LENGTH",
    "RefreshVerdict",
    "TokenState",
    "hash_refresh_token",
    "judge",
    "new_refresh_token",
]

#: A refresh token is 43 url-safe characters; anything much longer is not one of ours.
MAX_REFRESH_TOKEN_LENGTH = 128


def new_refresh_token() -> str:
    """A fresh opaque refresh token (256 bits)."""
    return secrets.token_urlsafe(32)


def hash_refresh_token(token: str) -> str:
    """What the database keeps of a refresh token (hex SHA-256; the token has full entropy)."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenState:
    """The stored state of one refresh token."""

    expires_at: datetime
    used_at: datetime | None
    revoked_at: datetime | None


class RefreshVerdict(enum.Enum):
    """What presenting a refresh token leads to."""

    ROTATE = "rotate"
    REUSED = "reused"  # spent or revoked: revoke the family
    EXPIRED = "expired"


def judge(state: TokenState, *, now: datetime) -> RefreshVerdict:
    """Decide what a presented refresh token leads to."""
    if state.used_at is not None or state.revoked_at is not None:
        return RefreshVerdict.REUSED
    if state.expires_at <= now:
        return RefreshVerdict.EXPIRED
    return RefreshVerdict.ROTATE
