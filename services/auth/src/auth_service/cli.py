"""``python -m auth_service create-admin --phone +15550000001 [--chat-id 1000001]``."""

import argparse
import asyncio
from typing import Any

from auth_service.service.users import ensure_admin
from auth_service.settings import AuthSettings
from storefront_kit.cli import ServiceCommand
from storefront_kit.db import create_engine, create_sessionmaker
from storefront_kit.errors import AppError

__all__ = ["COMMANDS", "create_admin"]


async def create_admin(
    database_url: str, *, phone: str, chat_id: int | None = None
) -> dict[str, Any]:
    """Upsert an admin (idempotent) in one transaction; what the user looks like afterwards."""
    engine = create_engine(database_url, pool_size=1, max_overflow=0, application_name="auth-cli")
    try:
        sessionmaker = create_sessionmaker(engine)
        async with sessionmaker() as session, session.begin():
            account = await ensure_admin(session, phone=phone, chat_id=chat_id)
            user = account.user
            return {
                "id": str(user.id),
                "phone": user.phone,
                "roles": list(user.roles),
                "telegram_chat_id": user.telegram_chat_id,
                "created": account.created,
            }
    finally:
        await engine.dispose()


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--phone", required=True, help="E.164 phone number, e.g. +15550000001")
    parser.add_argument("--chat-id", type=int, default=None, help="Telegram chat to link")


def _run(args: argparse.Namespace, settings: AuthSettings) -> None:
    try:
        result = asyncio.run(
            create_admin(settings.database_url, phone=args.phone, chat_id=args.chat_id)
        )
    except AppError as exc:
        raise SystemExit(f"create-admin: {exc.detail}") from None
    verb = "created" if result["created"] else "updated"
    chat = result["telegram_chat_id"]
    print(
        f"admin {verb}: {result['phone']} id={result['id']} roles={','.join(result['roles'])}"
        + (f" telegram_chat_id={chat}" if chat is not None else "")
    )


COMMANDS = [
    ServiceCommand(
        name="create-admin",
        help="create or update an admin user (idempotent), optionally linking a Telegram chat",
        run=_run,
        add_arguments=_arguments,
    )
]
