"""encrypt shipping addresses (name, address, phone) at rest

Existing rows are converted in batches with the keys of the environment the migration
runs in (the service's own: run it as the service, `python -m orders_service migrate`).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 10:00:00
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from orders_service.fields import ADDRESS_CONTEXT, FIELDS

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000


def upgrade() -> None:
    op.add_column("customer_order", sa.Column("address_token", sa.LargeBinary(), nullable=True))
    connection = op.get_bind()
    cipher = FIELDS.cipher
    while rows := connection.execute(
        sa.text(
            "SELECT id, shipping_address::text AS address FROM customer_order"
            " WHERE address_token IS NULL ORDER BY id LIMIT :n"
        ),
        {"n": BATCH},
    ).all():
        connection.execute(
            sa.text("UPDATE customer_order SET address_token = :t WHERE id = :id"),
            [
                {
                    "id": row.id,
                    # The same bytes the column type writes (compact JSON).
                    "t": cipher.encrypt(
                        json.dumps(json.loads(row.address), separators=(",", ":")).encode(),
                        context=ADDRESS_CONTEXT,
                    ),
                }
                for row in rows
            ],
        )
    op.drop_column("customer_order", "shipping_address")
    op.alter_column(
        "customer_order", "address_token", new_column_name="shipping_address", nullable=False
    )


def downgrade() -> None:
    op.add_column(
        "customer_order",
        sa.Column("address_plain", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )
    connection = op.get_bind()
    cipher = FIELDS.cipher
    while rows := connection.execute(
        sa.text(
            "SELECT id, shipping_address FROM customer_order"
            " WHERE address_plain IS NULL ORDER BY id LIMIT :n"
        ),
        {"n": BATCH},
    ).all():
        connection.execute(
            sa.text("UPDATE customer_order SET address_plain = CAST(:a AS jsonb) WHERE id = :id"),
            [
                {
                    "id": row.id,
                    "a": cipher.decrypt(
                        bytes(row.shipping_address), context=ADDRESS_CONTEXT
                    ).decode(),
                }
                for row in rows
            ],
        )
    op.drop_column("customer_order", "shipping_address")
    op.alter_column(
        "customer_order", "address_plain", new_column_name="shipping_address", nullable=False
    )
