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
from auth_service.domain.roles import ADMIN
from auth_service.settings import AuthSettings

if TYPE_CHECKING:
    from storefront_stack.platform import Platform

__all__ = [
    "DEFAULT_ADMIN_CHAT_ID",
    "DEFAULT_ADMIN_PHONE",
    "admin_from_environment",
    "auth_settings",
    "create_staff",
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


#: Settings of auth the seed needs besides the database: the keys phones are encrypted with.
_AUTH_KEYS = ("encryption_keys", "encryption_key_id", "blind_index_key")


def auth_settings(environ: Mapping[str, str]) -> AuthSettings:
    """Auth's settings with the field-encryption keys of ``environ`` (auth's environment)."""
    keys = {
        field: environ[AuthSettings.env_name(field)]
        for field in _AUTH_KEYS
        if AuthSettings.env_name(field) in environ
    }
    return AuthSettings(**keys)  # type: ignore[arg-type]


def seed_admin(database_url: str, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Create or update the seeded admin in the ``auth`` database at ``database_url``.

    Its phone and chat are encrypted with the ``AUTH_*`` keys ``environ`` (default: this
    process's environment) holds: they must be the ones the auth service runs with.
    """
    env = os.environ if environ is None else environ
    phone, chat_id = admin_from_environment(env)
    return asyncio.run(
        create_admin(database_url, phone=phone, chat_id=chat_id, settings=auth_settings(env))
    )


async def create_staff(
    platform: Platform, *, phone: str, chat_id: int, role: str = ADMIN
) -> dict[str, Any]:
    """Create or update a staff user in the running platform's ``auth`` database (what
    ``create-admin`` does), its phone and chat encrypted with auth's own keys: with any
    other, auth could not find the phone."""
    assert platform.endpoints is not None
    return await create_admin(
        platform.endpoints.database_url("auth"),
        phone=phone,
        chat_id=chat_id,
        role=role,
        settings=auth_settings(platform.service_env("auth")),
    )


def seed(platform: Platform) -> None:
    """Seed the admin against the running platform's ``auth`` database."""
    assert platform.endpoints is not None
    admin = seed_admin(
        platform.endpoints.database_url("auth"), {**os.environ, **platform.service_env("auth")}
    )
    verb = "created" if admin["created"] else "already there"
    print(f"admin: {admin['phone']} ({verb}), linked to Telegram chat {admin['telegram_chat_id']}")
