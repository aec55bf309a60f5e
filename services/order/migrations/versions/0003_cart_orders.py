"""Carts, orders with their lines and state history (C1-C3, O1, O2, O6).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

from services.common.db import BigId, UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cart_items",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.BigInteger, nullable=False),
        sa.Column("sku_id", sa.BigInteger, nullable=False),
        sa.Column("product_id", sa.BigInteger, nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("added_price_fen", sa.BigInteger, nullable=False),
        sa.Column("selected", sa.Boolean, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("user_id", "sku_id", name="uq_cart_items_user_sku"),
    )
    op.create_table(
        "orders",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("order_no", sa.String(32), nullable=False, unique=True),
        sa.Column("user_id", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("items_total_fen", sa.BigInteger, nullable=False),
        sa.Column("level_discount_fen", sa.BigInteger, nullable=False),
        sa.Column("coupon_discount_fen", sa.BigInteger, nullable=False),
        sa.Column("points_discount_fen", sa.BigInteger, nullable=False),
        sa.Column("freight_fen", sa.BigInteger, nullable=False),
        sa.Column("payable_fen", sa.BigInteger, nullable=False),
        sa.Column("coupon_id", sa.BigInteger, nullable=False),
        sa.Column("points_used", sa.BigInteger, nullable=False),
        sa.Column("note", sa.String(200), nullable=False),
        sa.Column("ship_name", sa.String(64), nullable=False),
        sa.Column("ship_phone", sa.String(20), nullable=False),
        sa.Column("ship_province", sa.String(32), nullable=False),
        sa.Column("ship_city", sa.String(32), nullable=False),
        sa.Column("ship_district", sa.String(32), nullable=False),
        sa.Column("ship_detail", sa.String(255), nullable=False),
        sa.Column("pay_deadline", UTCDateTime, nullable=False),
        sa.Column("paid_at", UTCDateTime, nullable=True),
        sa.Column("pay_channel", sa.String(16), nullable=False),
        sa.Column("out_trade_no", sa.String(64), nullable=False),
        sa.Column("prepaid_at", UTCDateTime, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.CheckConstraint("payable_fen >= 0", name="ck_orders_payable_not_negative"),
    )
    op.create_index("ix_orders_user_created", "orders", ["user_id", "created_at"])
    op.create_index("ix_orders_status_deadline", "orders", ["status", "pay_deadline"])
    op.create_table(
        "order_lines",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("order_id", BigId, sa.ForeignKey("orders.id"), nullable=False, index=True),
        sa.Column("sku_id", sa.BigInteger, nullable=False),
        sa.Column("product_id", sa.BigInteger, nullable=False),
        sa.Column("category_id", sa.BigInteger, nullable=False),
        sa.Column("brand_id", sa.BigInteger, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("spec", sa.String(255), nullable=False),
        sa.Column("image", sa.String(512), nullable=False),
        sa.Column("price_fen", sa.BigInteger, nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
    )
    op.create_table(
        "order_transitions",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("order_id", BigId, sa.ForeignKey("orders.id"), nullable=False, index=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(255), nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("order_transitions")
    op.drop_table("order_lines")
    op.drop_table("orders")
    op.drop_table("cart_items")
