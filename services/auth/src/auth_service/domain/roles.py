"""Roles a user may hold, and the rule that keeps an admin from locking themself out."""

from collections.abc import Iterable
from typing import Literal, get_args

__all__ = [
    "ADMIN",
    "CUSTOMER",
    "DEFAULT_ROLES",
    "KNOWN_ROLES",
    "MODERATOR",
    "STAFF_ROLES",
    "Role",
    "is_staff",
    "normalise",
]

Role = Literal["admin", "moderator", "customer"]
KNOWN_ROLES: tuple[str, ...] = get_args(Role)
ADMIN = "admin"
MODERATOR = "moderator"
CUSTOMER = "customer"
DEFAULT_ROLES: tuple[str, ...] = (CUSTOMER,)
#: Roles whose accounts are never linked to a chat that has not proven the phone.
STAFF_ROLES = frozenset({ADMIN, MODERATOR})


def is_staff(roles: Iterable[str]) -> bool:
    """Whether any of ``roles`` is a staff role."""
    return not STAFF_ROLES.isdisjoint(roles)


def normalise(roles: Iterable[str]) -> list[str]:
    """Distinct roles in a stable order (admin, moderator, customer); unknown ones refused."""
    wanted = set(roles)
    unknown = wanted.difference(KNOWN_ROLES)
    if unknown:
        raise ValueError(f"unknown roles: {', '.join(sorted(unknown))}")
    return [role for role in KNOWN_ROLES if role in wanted]
