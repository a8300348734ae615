"""customer_order: the client address a checkout came from (fraud velocity per address)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 03:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("customer_order", sa.Column("client_address", sa.String(64), nullable=True))


def downgrade() -> None:
    op.drop_column("customer_order", "client_address")
