"""encrypt phones and Telegram chat ids at rest, with blind indexes for lookups

Existing rows are converted in batches with the keys of the environment the migration
runs in (the service's own: run it as the service, `python -m auth_service migrate`).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from auth_service.fields import CHAT_CONTEXT, FIELDS, PHONE_CONTEXT

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000


def upgrade() -> None:
    for name in ("phone_token", "phone_index", "chat_token", "telegram_chat_index"):
        op.add_column("user_account", sa.Column(name, sa.LargeBinary(), nullable=True))
    connection = op.get_bind()
    cipher, index = FIELDS.cipher, FIELDS.index
    while rows := connection.execute(
        sa.text(
            "SELECT id, phone, telegram_chat_id FROM user_account"
            " WHERE phone_token IS NULL ORDER BY id LIMIT :n"
        ),
        {"n": BATCH},
    ).all():
        connection.execute(
            sa.text(
                "UPDATE user_account SET phone_token = :pt, phone_index = :pi,"
                " chat_token = :ct, telegram_chat_index = :ci WHERE id = :id"
            ),
            [
                {
                    "id": row.id,
                    "pt": cipher.encrypt_text(row.phone, context=PHONE_CONTEXT),
                    "pi": index.digest(row.phone, context=PHONE_CONTEXT),
                    "ct": None
                    if row.telegram_chat_id is None
                    else cipher.encrypt_text(str(row.telegram_chat_id), context=CHAT_CONTEXT),
                    "ci": None
                    if row.telegram_chat_id is None
                    else index.digest(row.telegram_chat_id, context=CHAT_CONTEXT),
                }
                for row in rows
            ],
        )
    op.drop_constraint(op.f("ck_user_account_phone_e164"), "user_account", type_="check")
    op.drop_column("user_account", "phone")  # and its unique constraint
    op.drop_column("user_account", "telegram_chat_id")
    op.alter_column("user_account", "phone_token", new_column_name="phone", nullable=False)
    op.alter_column("user_account", "chat_token", new_column_name="telegram_chat_id")
    op.alter_column("user_account", "phone_index", nullable=False)
    op.create_unique_constraint(
        op.f("uq_user_account_phone_index"), "user_account", ["phone_index"]
    )
    op.create_unique_constraint(
        op.f("uq_user_account_telegram_chat_index"), "user_account", ["telegram_chat_index"]
    )


def downgrade() -> None:
    op.add_column("user_account", sa.Column("phone_plain", sa.String(length=16), nullable=True))
    op.add_column("user_account", sa.Column("chat_plain", sa.BigInteger(), nullable=True))
    connection = op.get_bind()
    cipher = FIELDS.cipher
    while rows := connection.execute(
        sa.text(
            "SELECT id, phone, telegram_chat_id FROM user_account"
            " WHERE phone_plain IS NULL ORDER BY id LIMIT :n"
        ),
        {"n": BATCH},
    ).all():
        connection.execute(
            sa.text("UPDATE user_account SET phone_plain = :p, chat_plain = :c WHERE id = :id"),
            [
                {
                    "id": row.id,
                    "p": cipher.decrypt_text(row.phone, context=PHONE_CONTEXT),
                    "c": None
                    if row.telegram_chat_id is None
                    else int(cipher.decrypt_text(row.telegram_chat_id, context=CHAT_CONTEXT)),
                }
                for row in rows
            ],
        )
    for name in ("phone", "phone_index", "telegram_chat_id", "telegram_chat_index"):
        op.drop_column("user_account", name)
    op.alter_column("user_account", "phone_plain", new_column_name="phone", nullable=False)
    op.alter_column("user_account", "chat_plain", new_column_name="telegram_chat_id")
    op.create_unique_constraint(op.f("uq_user_account_phone"), "user_account", ["phone"])
    op.create_unique_constraint(
        op.f("uq_user_account_telegram_chat_id"), "user_account", ["telegram_chat_id"]
    )
    op.create_check_constraint(
        op.f("ck_user_account_phone_e164"), "user_account", "phone ~ '^\\+[1-9][0-9]{1,14}$'"
    )
