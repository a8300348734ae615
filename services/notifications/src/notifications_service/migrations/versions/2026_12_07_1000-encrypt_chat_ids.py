"""encrypt the notification log's chat ids at rest, with a blind index for the unique key

Existing rows are converted in batches with the keys of the environment the migration
runs in (the service's own: run it as the service, `python -m notifications_service
migrate`).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from notifications_service.fields import CHAT_CONTEXT, FIELDS

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000


def upgrade() -> None:
    op.add_column("notification_log", sa.Column("chat_token", sa.LargeBinary(), nullable=True))
    op.add_column("notification_log", sa.Column("chat_index", sa.LargeBinary(), nullable=True))
    connection = op.get_bind()
    cipher, index = FIELDS.cipher, FIELDS.index
    while rows := connection.execute(
        sa.text(
            "SELECT id, chat_id FROM notification_log WHERE chat_token IS NULL ORDER BY id LIMIT :n"
        ),
        {"n": BATCH},
    ).all():
        connection.execute(
            sa.text("UPDATE notification_log SET chat_token = :t, chat_index = :i WHERE id = :id"),
            [
                {
                    "id": row.id,
                    "t": cipher.encrypt_text(str(row.chat_id), context=CHAT_CONTEXT),
                    "i": index.digest(row.chat_id, context=CHAT_CONTEXT),
                }
                for row in rows
            ],
        )
    op.drop_column("notification_log", "chat_id")  # and the unique key over it
    op.alter_column("notification_log", "chat_token", new_column_name="chat_id", nullable=False)
    op.alter_column("notification_log", "chat_index", nullable=False)
    op.create_unique_constraint(
        op.f("uq_notification_log_event_id_chat_index_kind"),
        "notification_log",
        ["event_id", "chat_index", "kind"],
    )


def downgrade() -> None:
    op.add_column("notification_log", sa.Column("chat_plain", sa.BigInteger(), nullable=True))
    connection = op.get_bind()
    cipher = FIELDS.cipher
    while rows := connection.execute(
        sa.text(
            "SELECT id, chat_id FROM notification_log WHERE chat_plain IS NULL ORDER BY id LIMIT :n"
        ),
        {"n": BATCH},
    ).all():
        connection.execute(
            sa.text("UPDATE notification_log SET chat_plain = :c WHERE id = :id"),
            [
                {
                    "id": row.id,
                    "c": int(cipher.decrypt_text(bytes(row.chat_id), context=CHAT_CONTEXT)),
                }
                for row in rows
            ],
        )
    op.drop_column("notification_log", "chat_id")
    op.drop_column("notification_log", "chat_index")
    op.alter_column("notification_log", "chat_plain", new_column_name="chat_id", nullable=False)
    op.create_unique_constraint(
        op.f("uq_notification_log_event_id_chat_id_kind"),
        "notification_log",
        ["event_id", "chat_id", "kind"],
    )
