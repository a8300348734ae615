"""Seed the admin of the local profile, already linked to the Telegram stand-in's chat.

With it an admin logs in through the ordinary OTP flow (docs/design.md §4, local profile):
``/otp/send`` for ``SEED_ADMIN_PHONE`` delivers the code to chat ``SEED_ADMIN_CHAT_ID``,
where ``GET /sandbox/telegram/messages?chat_id=...`` shows it. Idempotent: it is the
same upsert as ``python -m auth_service create-admin``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from auth_service.cli import create_admin

if TYPE_CHECKING:
    from storefront_stack.platform import Platform

__all__ = [
    "DEFAULT_ADMIN_CHAT_ID",
    "DEFAULT_ADMIN_PHONE",
    "admin_from_environment",
    "seed",
    "seed_admin",
]

DEFAULT_ADMIN_PHONE = "+15550000001"
DEFAULT_ADMIN_CHAT_ID = 1000001


def admin_from_environment(environ: Mapping[str, str] | None = None) -> tuple[str, int]:
    """``(phone, chat_id)`` from ``SEED_ADMIN_PHONE`` and ``SEED_ADMIN_CHAT_ID``."""
    env = os.environ if environ is None else environ
    phone = env.get("SEED_ADMIN_PHONE") or DEFAULT_ADMIN_PHONE
    chat_id = int(env.get("SEED_ADMIN_CHAT_ID") or DEFAULT_ADMIN_CHAT_ID)
    return phone, chat_id


def seed_admin(database_url: str, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Create or update the seeded admin in the ``auth`` database at ``database_url``."""
    phone, chat_id = admin_from_environment(environ)
    return asyncio.run(create_admin(database_url, phone=phone, chat_id=chat_id))


def seed(platform: Platform) -> None:
    """Seed the admin against the running platform's ``auth`` database."""
    assert platform.endpoints is not None
    admin = seed_admin(platform.endpoints.database_url("auth"))
    verb = "created" if admin["created"] else "already there"
    print(f"admin: {admin['phone']} ({verb}), linked to Telegram chat {admin['telegram_chat_id']}")
