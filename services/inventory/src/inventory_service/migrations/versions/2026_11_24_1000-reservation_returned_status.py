"""reservations can be returned: a committed sale given back to stock

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 10:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KNOWN = "status IN ('reserved', 'committed', 'released', 'expired'{extra})"


def upgrade() -> None:
    op.drop_constraint(op.f("ck_reservation_status_known"), "reservation", type_="check")
    op.create_check_constraint("status_known", "reservation", _KNOWN.format(extra=", 'returned'"))


def downgrade() -> None:
    # A returned sale was a committed one before; keep the older constraint satisfiable.
    op.execute("UPDATE reservation SET status = 'committed' WHERE status = 'returned'")
    op.drop_constraint(op.f("ck_reservation_status_known"), "reservation", type_="check")
    op.create_check_constraint("status_known", "reservation", _KNOWN.format(extra=""))
