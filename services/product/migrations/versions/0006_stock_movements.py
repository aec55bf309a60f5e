"""Stock ledger: one append-only row per change of a SKU's stock; existing SKUs open it with what they hold.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

from services.common.db import BigId, UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stock_movements",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("sku_id", BigId, sa.ForeignKey("skus.id"), nullable=False),
        sa.Column("product_id", BigId, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("available", BigId, nullable=False),
        sa.Column("reserved", BigId, nullable=False),
        sa.Column("sold", BigId, nullable=False),
        sa.Column("reference", sa.String(64), nullable=False, server_default=""),
        sa.Column("actor_id", BigId, nullable=False, server_default="0"),
        sa.Column("reason", sa.String(200), nullable=False, server_default=""),
        sa.Column("at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_stock_movements_sku_id", "stock_movements", ["sku_id", "id"])
    # SKUs created before the ledger open it with what they hold now: from here on every change is a row,
    # so the audit checks them like the others (their past is not recoverable, and not claimed).
    op.execute("""
        INSERT INTO stock_movements (sku_id, product_id, kind, available, reserved, sold, reference, actor_id,
                                     reason, at)
        SELECT s.id, s.product_id, 'opening', s.stock,
               COALESCE((SELECT SUM(r.quantity) FROM stock_reservations r
                         WHERE r.sku_id = s.id AND r.status = 'RESERVED'), 0),
               s.sales, '', 0, 'balance when the stock ledger began', CURRENT_TIMESTAMP
        FROM skus s ORDER BY s.id
    """)


def downgrade() -> None:
    op.drop_table("stock_movements")
