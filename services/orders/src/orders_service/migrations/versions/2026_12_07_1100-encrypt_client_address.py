"""encrypt the checkout's client address at rest

The fraud rules keep the IP a checkout came from (velocity per client); it is personal
data like the shipping address, so it is stored the same way. Existing rows are
converted in batches with the keys of the environment the migration runs in (the
service's own: run it as the service, `python -m orders_service migrate`).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from orders_service.fields import CLIENT_ADDRESS_CONTEXT, FIELDS

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000


def upgrade() -> None:
    op.add_column("customer_order", sa.Column("client_token", sa.LargeBinary(), nullable=True))
    connection = op.get_bind()
    cipher = FIELDS.cipher
    while rows := connection.execute(
        sa.text(
            "SELECT id, client_address FROM customer_order"
            " WHERE client_address IS NOT NULL AND client_token IS NULL ORDER BY id LIMIT :n"
        ),
        {"n": BATCH},
    ).all():
        connection.execute(
            sa.text("UPDATE customer_order SET client_token = :t WHERE id = :id"),
            [
                {
                    "id": row.id,
                    "t": cipher.encrypt(
                        row.client_address.encode(), context=CLIENT_ADDRESS_CONTEXT
                    ),
                }
                for row in rows
            ],
        )
    op.drop_column("customer_order", "client_address")
    op.alter_column("customer_order", "client_token", new_column_name="client_address")


def downgrade() -> None:
    op.add_column("customer_order", sa.Column("client_plain", sa.String(64), nullable=True))
    connection = op.get_bind()
    cipher = FIELDS.cipher
    while rows := connection.execute(
        sa.text(
            "SELECT id, client_address FROM customer_order"
            " WHERE client_address IS NOT NULL AND client_plain IS NULL ORDER BY id LIMIT :n"
        ),
        {"n": BATCH},
    ).all():
        connection.execute(
            sa.text("UPDATE customer_order SET client_plain = :a WHERE id = :id"),
            [
                {
                    "id": row.id,
                    "a": cipher.decrypt(
                        bytes(row.client_address), context=CLIENT_ADDRESS_CONTEXT
                    ).decode(),
                }
                for row in rows
            ],
        )
    op.drop_column("customer_order", "client_address")
    op.alter_column("customer_order", "client_plain", new_column_name="client_address")
