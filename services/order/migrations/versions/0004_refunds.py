"""Refunds through the original channel, and the refunded amounts orders and lines can never exceed.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

from services.common.db import BigId, UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orders") as orders:
        orders.add_column(sa.Column("refunded_fen", sa.BigInteger, nullable=False, server_default="0"))
        orders.create_check_constraint("ck_orders_refund_within_paid",
                                       "refunded_fen >= 0 AND refunded_fen <= payable_fen")
    with op.batch_alter_table("order_lines") as lines:
        lines.add_column(sa.Column("refunded_quantity", sa.Integer, nullable=False, server_default="0"))
        lines.add_column(sa.Column("refunded_fen", sa.BigInteger, nullable=False, server_default="0"))
        lines.create_check_constraint("ck_order_lines_refund_within_quantity",
                                      "refunded_quantity >= 0 AND refunded_quantity <= quantity")
        lines.create_check_constraint("ck_order_lines_refund_within_total",
                                      "refunded_fen >= 0 AND refunded_fen <= price_fen * quantity")
    op.create_table(
        "refunds",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("refund_no", sa.String(64), nullable=False, unique=True),
        sa.Column("order_id", BigId, sa.ForeignKey("orders.id"), nullable=False, index=True),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("channel_refund_id", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(255), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("settled_at", UTCDateTime, nullable=True),
        sa.CheckConstraint("amount_fen > 0", name="ck_refunds_amount_positive"),
        sa.CheckConstraint("status IN ('PENDING', 'SUCCESS', 'CLOSED', 'ABNORMAL')", name="ck_refunds_status"),
    )
    op.create_index("ix_refunds_status_created", "refunds", ["status", "created_at"])
    op.create_table(
        "refund_lines",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("refund_id", BigId, sa.ForeignKey("refunds.id"), nullable=False, index=True),
        sa.Column("line_id", BigId, sa.ForeignKey("order_lines.id"), nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.CheckConstraint("quantity >= 0 AND amount_fen >= 0", name="ck_refund_lines_not_negative"),
    )


def downgrade() -> None:
    op.drop_table("refund_lines")
    op.drop_table("refunds")
    with op.batch_alter_table("order_lines") as lines:
        lines.drop_constraint("ck_order_lines_refund_within_total", type_="check")
        lines.drop_constraint("ck_order_lines_refund_within_quantity", type_="check")
        lines.drop_column("refunded_fen")
        lines.drop_column("refunded_quantity")
    with op.batch_alter_table("orders") as orders:
        orders.drop_constraint("ck_orders_refund_within_paid", type_="check")
        orders.drop_column("refunded_fen")
