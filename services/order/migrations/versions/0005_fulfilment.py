"""Fulfilment: shipments (one order may ship in several parcels), shipped and completed times (O3).

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

from services.common.db import BigId, UTCDateTime

revision = "0005"
down_revision = "0003"  # re-pointed to "0004" (refunds) once both are on main
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orders") as orders:
        orders.add_column(sa.Column("shipped_at", UTCDateTime, nullable=True))
        orders.add_column(sa.Column("completed_at", UTCDateTime, nullable=True))
    op.create_index("ix_orders_status_shipped", "orders", ["status", "shipped_at"])
    op.create_table(
        "shipments",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("order_id", BigId, sa.ForeignKey("orders.id"), nullable=False, index=True),
        sa.Column("shipment_no", sa.String(40), nullable=False, unique=True),
        sa.Column("carrier", sa.String(32), nullable=False),
        sa.Column("tracking_no", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("shipped_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("order_id", "carrier", "tracking_no", name="uq_shipments_order_tracking"),
    )
    op.create_table(
        "shipment_lines",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("shipment_id", BigId, sa.ForeignKey("shipments.id"), nullable=False, index=True),
        sa.Column("line_id", BigId, sa.ForeignKey("order_lines.id"), nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.CheckConstraint("quantity > 0", name="ck_shipment_lines_quantity_positive"),
    )


def downgrade() -> None:
    op.drop_table("shipment_lines")
    op.drop_table("shipments")
    op.drop_index("ix_orders_status_shipped", "orders")
    with op.batch_alter_table("orders") as orders:
        orders.drop_column("completed_at")
        orders.drop_column("shipped_at")
