"""Roles a user may hold, and the rule that keeps an admin from locking themself out."""

from collections.abc import Iterable
from typing import Literal, get_args

__all__ = ["ADMIN", "CUSTOMER", "DEFAULT_ROLES", "KNOWN_ROLES", "MODERATOR", "Role", "normalise"]

Role = Literal["admin", "moderator", "customer"]
KNOWN_ROLES: tuple[str, ...] = get_args(Role)
ADMIN = "admin"
MODERATOR = "moderator"
CUSTOMER = "customer"
DEFAULT_ROLES: tuple[str, ...] = (CUSTOMER,)


def normalise(roles: Iterable[str]) -> list[str]:
    """Distinct roles in a stable order (admin, moderator, customer); unknown ones refused."""
    wanted = set(roles)
    unknown = wanted.difference(KNOWN_ROLES)
    if unknown:
        raise ValueError(f"unknown roles: {', '.join(sorted(unknown))}")
    return [role for role in KNOWN_ROLES if role in wanted]
