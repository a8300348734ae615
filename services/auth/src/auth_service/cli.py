"""``python -m auth_service create-admin --phone +15550000001 --chat-id 1000001``.

``--role moderator`` makes a moderator instead of an admin.

A staff account is always created linked to its Telegram chat: one without a chat would
belong to whichever chat first proved its phone.

It refuses to run with encryption keys other than the running service's (say the
development stand-ins, when ``make run`` generated real ones): a row written under them
could be read by nobody, and the admin user list could not show it.

``python -m auth_service rotate-keys`` re-encrypts every phone and chat id with the
active encryption key (AUTH_ENCRYPTION_KEY_ID); see docs/auth.md, "Rotating secrets".
"""

import argparse
import asyncio
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service import fields
from auth_service.domain.roles import ADMIN, MODERATOR
from auth_service.models import UserAccount
from auth_service.service.users import ensure_staff
from auth_service.settings import AuthSettings
from storefront_kit.cli import ServiceCommand
from storefront_kit.db import create_engine, create_sessionmaker
from storefront_kit.encryption import FieldCryptoError
from storefront_kit.errors import AppError
from storefront_kit.key_rotation import EncryptedColumns, rotate_keys_command

__all__ = ["COMMANDS", "ENCRYPTED", "ForeignKeys", "create_admin"]

#: Every encrypted column of the auth database (what ``rotate-keys`` re-encrypts).
ENCRYPTED = [
    EncryptedColumns(
        "user_account",
        {"phone": fields.PHONE_CONTEXT, "telegram_chat_id": fields.CHAT_CONTEXT},
    )
]


class ForeignKeys(AppError):
    """The database holds values these keys cannot read: they are not the service's."""

    code = "foreign_encryption_keys"
    title = "Not the auth service's encryption keys"


async def _refuse_foreign_keys(session: AsyncSession) -> None:
    """Refuse when one stored phone does not decrypt, or does not index, under our keys.

    One row is enough: the service writes every row under its active key, and
    ``rotate-keys`` leaves the old key readable while it re-encrypts.
    """
    try:
        # The column type decrypts: a key id we lack or a failed tag raises here.
        # An erased user has no phone left to read: only live users tell.
        stored = (
            await session.execute(
                select(UserAccount.phone, UserAccount.phone_index)
                .where(UserAccount.erased_at.is_(None))
                .limit(1)
            )
        ).first()
        readable = stored is None or fields.phone_index(stored.phone) == stored.phone_index
    except FieldCryptoError:
        readable = False
    if not readable:
        raise ForeignKeys(
            "the users already stored were written under other keys; run with the auth "
            "service's own AUTH_ENCRYPTION_KEYS, AUTH_ENCRYPTION_KEY_ID and "
            "AUTH_BLIND_INDEX_KEY (`make run` keeps its keys under .stack/run/keys and "
            "seeds its admin with them)"
        )


async def create_admin(
    database_url: str,
    *,
    phone: str,
    chat_id: int,
    role: str = ADMIN,
    settings: AuthSettings | None = None,
) -> dict[str, Any]:
    """Upsert a staff user (idempotent) in one transaction; what the user looks like after.

    The phone and chat are encrypted with the keys of ``settings`` (default: the
    environment's ``AUTH_*``), which must be the auth service's own.
    """
    if settings is not None:
        fields.install(*settings.field_crypto())
    engine = create_engine(database_url, pool_size=1, max_overflow=0, application_name="auth-cli")
    try:
        sessionmaker = create_sessionmaker(engine)
        async with sessionmaker() as session, session.begin():
            await _refuse_foreign_keys(session)
            account = await ensure_staff(session, phone=phone, chat_id=chat_id, role=role)
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
    parser.add_argument(
        "--chat-id",
        type=int,
        required=True,
        help="the person's Telegram chat id (required: staff accounts are never unlinked)",
    )
    parser.add_argument(
        "--role", choices=[ADMIN, MODERATOR], default=ADMIN, help="staff role (default: admin)"
    )


def _run(args: argparse.Namespace, settings: AuthSettings) -> None:
    try:
        result = asyncio.run(
            create_admin(
                settings.database_url,
                phone=args.phone,
                chat_id=args.chat_id,
                role=args.role,
                settings=settings,
            )
        )
    except AppError as exc:
        raise SystemExit(f"create-admin: {exc.detail}") from None
    verb = "created" if result["created"] else "updated"
    print(
        f"{args.role} {verb}: {result['phone']} id={result['id']} "
        f"roles={','.join(result['roles'])} telegram_chat_id={result['telegram_chat_id']}"
    )


COMMANDS = [
    ServiceCommand(
        name="create-admin",
        help="create or update a staff user (idempotent), linked to their Telegram chat",
        run=_run,
        add_arguments=_arguments,
    ),
    rotate_keys_command(ENCRYPTED, install=fields.install),
]
