"""customer_order: the pseudonym of the customer's phone (fraud velocity per phone)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 13:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no backfill: orders placed before it count for no phone (a window later
    # every counted checkout carries one).
    op.add_column("customer_order", sa.Column("phone_ref", sa.String(64), nullable=True))


def downgrade() -> None:
    op.drop_column("customer_order", "phone_ref")
