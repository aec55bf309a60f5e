"""Catalogue (categories, brands, products, SKUs, search terms), audit log, stock reservations, delivery table.

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
        "categories",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("parent_id", BigId, sa.ForeignKey("categories.id"), nullable=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("icon", sa.String(512), nullable=False),
        sa.Column("sort", sa.Integer, nullable=False),
    )
    op.create_index("ix_categories_parent_id", "categories", ["parent_id"])
    op.create_table(
        "brands",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("logo", sa.String(512), nullable=False),
    )
    op.create_table(
        "products",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("subtitle", sa.String(200), nullable=False),
        sa.Column("category_id", BigId, sa.ForeignKey("categories.id"), nullable=False),
        sa.Column("brand_id", BigId, sa.ForeignKey("brands.id"), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("images", sa.JSON, nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("specs", sa.JSON, nullable=False),
        sa.Column("after_sales_policy", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("on_shelf", sa.Boolean, nullable=False),
        sa.Column("reject_reason", sa.String(500), nullable=False),
        sa.Column("price_fen", BigId, nullable=False),
        sa.Column("market_price_fen", BigId, nullable=False),
        sa.Column("sales", BigId, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_products_category_id", "products", ["category_id"])
    op.create_index("ix_products_brand_id", "products", ["brand_id"])
    op.create_index("ix_products_visible_created", "products", ["status", "on_shelf", "created_at"])
    op.create_table(
        "skus",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("product_id", BigId, sa.ForeignKey("products.id"), nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("spec_key", sa.String(500), nullable=False),
        sa.Column("price_fen", BigId, nullable=False),
        sa.Column("market_price_fen", BigId, nullable=False),
        sa.Column("stock", BigId, nullable=False),
        sa.Column("weight_g", sa.Integer, nullable=False),
        sa.Column("sales", BigId, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.UniqueConstraint("product_id", "spec_key", name="uq_skus_product_spec"),
        # The last line of defence: no code path can drive stock below zero.
        sa.CheckConstraint("stock >= 0", name="ck_skus_stock_not_negative"),
        sa.CheckConstraint("price_fen > 0", name="ck_skus_price_positive"),
    )
    op.create_table(
        "search_terms",
        sa.Column("term", sa.String(32), primary_key=True),
        sa.Column("product_id", BigId, sa.ForeignKey("products.id"), primary_key=True),
        sa.Column("weight", sa.Integer, nullable=False),
    )
    op.create_index("ix_search_terms_product_id", "search_terms", ["product_id"])
    op.create_table(
        "product_audit_log",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("product_id", BigId, sa.ForeignKey("products.id"), nullable=False),
        sa.Column("actor_id", BigId, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("before", sa.JSON, nullable=True),
        sa.Column("after", sa.JSON, nullable=True),
    )
    op.create_index("ix_product_audit_log_product_id", "product_audit_log", ["product_id"])
    op.create_table(
        "stock_reservations",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("order_no", sa.String(64), nullable=False),
        sa.Column("sku_id", BigId, sa.ForeignKey("skus.id"), nullable=False),
        sa.Column("quantity", BigId, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("order_no", "sku_id", name="uq_stock_reservations_order_sku"),
    )
    op.create_index("ix_stock_reservations_status_expires", "stock_reservations", ["status", "expires_at"])
    op.create_table(
        "delivery_estimates",
        sa.Column("province", sa.String(32), primary_key=True),
        sa.Column("estimate_days", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    for table in ("delivery_estimates", "stock_reservations", "product_audit_log", "search_terms", "skus",
                  "products", "brands", "categories"):
        op.drop_table(table)
