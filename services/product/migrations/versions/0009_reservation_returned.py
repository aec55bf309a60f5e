"""Units of a sold reservation that after-sales returns put back on sale, so returns never restock more than sold.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

from services.common.db import BigId

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Returns restocked before this column are not counted: a later return of the same order is bounded by what
    # it bought only (the ledger's return rows name the case, not the order).
    op.add_column("stock_reservations", sa.Column("returned", BigId, nullable=False, server_default="0"))


def downgrade() -> None:
    op.drop_column("stock_reservations", "returned")
