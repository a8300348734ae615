"""erasure: erased users keep no personal field; an outbox for the events auth publishes

`user_account.phone` and `phone_index` become nullable (NULL only once `erased_at` is
set, a check says so) and `outbox_event` holds `user.erased` until the relay publishes it
on `users.events`, committed with the erasure itself.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("user_account", sa.Column("erased_at", sa.DateTime(timezone=True)))
    op.alter_column("user_account", "phone", nullable=True)
    op.alter_column("user_account", "phone_index", nullable=True)
    op.create_check_constraint(
        "phone_unless_erased",
        "user_account",
        "erased_at IS NOT NULL OR (phone IS NOT NULL AND phone_index IS NOT NULL)",
    )
    op.create_table(
        "outbox_event",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("stream", sa.String(length=100), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("envelope", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_event")),
    )
    op.create_index(
        "ix_outbox_event_unpublished",
        "outbox_event",
        ["created_at"],
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.create_index(
        "ix_outbox_event_published_at",
        "outbox_event",
        ["published_at"],
        postgresql_where=sa.text("published_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_event_published_at", table_name="outbox_event")
    op.drop_index("ix_outbox_event_unpublished", table_name="outbox_event")
    op.drop_table("outbox_event")
    # Erased users have no phone to go back to: they leave with the column.
    op.execute(
        "DELETE FROM refresh_token WHERE user_id IN "
        "(SELECT id FROM user_account WHERE erased_at IS NOT NULL)"
    )
    op.execute("DELETE FROM user_account WHERE erased_at IS NOT NULL")
    op.drop_constraint(op.f("ck_user_account_phone_unless_erased"), "user_account", type_="check")
    op.alter_column("user_account", "phone_index", nullable=False)
    op.alter_column("user_account", "phone", nullable=False)
    op.drop_column("user_account", "erased_at")
