"""the notification log records whom each message was for (export and erasure)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("notification_log", sa.Column("user_id", sa.String(length=64), nullable=True))
    op.create_index(op.f("ix_notification_log_user_id"), "notification_log", ["user_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_notification_log_user_id"), table_name="notification_log")
    op.drop_column("notification_log", "user_id")
