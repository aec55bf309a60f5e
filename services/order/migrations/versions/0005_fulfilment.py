"""Fulfilment: shipments (one order may ship in several parcels), shipped and completed times (O3);
after-sales cases with their lines and history (O4).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

from services.common.db import BigId, UTCDateTime

revision = "0005"
down_revision = "0004"
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

    op.create_table(
        "after_sales",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("case_no", sa.String(32), nullable=False, unique=True),
        sa.Column("order_id", BigId, sa.ForeignKey("orders.id"), nullable=False, index=True),
        sa.Column("order_no", sa.String(32), nullable=False, index=True),
        sa.Column("user_id", sa.BigInteger, nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("reason", sa.String(255), nullable=False),
        sa.Column("images", sa.JSON, nullable=False),
        sa.Column("refund_fen", sa.BigInteger, nullable=False),
        sa.Column("return_carrier", sa.String(32), nullable=False),
        sa.Column("return_tracking_no", sa.String(64), nullable=False),
        sa.Column("refund_no", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.CheckConstraint("type IN ('refund_only', 'return_refund')", name="ck_after_sales_type"),
        sa.CheckConstraint("refund_fen >= 0", name="ck_after_sales_refund_not_negative"),
    )
    op.create_index("ix_after_sales_user_created", "after_sales", ["user_id", "created_at"])
    op.create_index("ix_after_sales_status_created", "after_sales", ["status", "created_at"])
    op.create_table(
        "after_sale_lines",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("case_id", BigId, sa.ForeignKey("after_sales.id"), nullable=False, index=True),
        sa.Column("line_id", BigId, sa.ForeignKey("order_lines.id"), nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("open", sa.Boolean, nullable=False),
        sa.CheckConstraint("quantity > 0", name="ck_after_sale_lines_quantity_positive"),
        sa.CheckConstraint("amount_fen >= 0", name="ck_after_sale_lines_amount_not_negative"),
    )
    op.create_index("uq_after_sale_lines_one_open", "after_sale_lines", ["line_id"], unique=True,
                    postgresql_where=sa.text("open"), sqlite_where=sa.text("open"))
    op.create_table(
        "after_sale_steps",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("case_id", BigId, sa.ForeignKey("after_sales.id"), nullable=False, index=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(255), nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("after_sale_steps")
    op.drop_table("after_sale_lines")
    op.drop_table("after_sales")
    op.drop_table("shipment_lines")
    op.drop_table("shipments")
    op.drop_index("ix_orders_status_shipped", "orders")
    with op.batch_alter_table("orders") as orders:
        orders.drop_column("completed_at")
        orders.drop_column("shipped_at")
