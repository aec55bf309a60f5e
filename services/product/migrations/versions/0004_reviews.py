"""Reviews: completed order lines (from order-completed), one review per line, per-product star counts.

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
    op.create_table(
        "reviewable_lines",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("order_no", sa.String(64), nullable=False),
        sa.Column("line_id", BigId, nullable=False),
        sa.Column("user_id", BigId, nullable=False),
        sa.Column("product_id", BigId, nullable=False),
        sa.Column("sku_id", BigId, nullable=False),
        sa.Column("completed_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("order_no", "line_id", name="uq_reviewable_lines_order_line"),
    )
    op.create_table(
        "reviews",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("product_id", BigId, sa.ForeignKey("products.id"), nullable=False),
        sa.Column("sku_id", BigId, nullable=False),
        sa.Column("user_id", BigId, nullable=False),
        sa.Column("order_no", sa.String(64), nullable=False),
        sa.Column("line_id", BigId, nullable=False),
        sa.Column("rating", sa.Integer, nullable=False),
        sa.Column("content", sa.String(500), nullable=False),
        sa.Column("images", sa.JSON, nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("buyer", sa.String(40), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        # One review per order line, whatever the code does: two concurrent posts cannot both insert.
        sa.UniqueConstraint("order_no", "line_id", name="uq_reviews_order_line"),
        sa.CheckConstraint("rating BETWEEN 1 AND 5", name="ck_reviews_rating"),
    )
    op.create_index("ix_reviews_product_created", "reviews", ["product_id", "created_at"])
    op.create_index("ix_reviews_user_created", "reviews", ["user_id", "created_at"])
    op.create_table(
        "product_ratings",
        sa.Column("product_id", BigId, sa.ForeignKey("products.id"), primary_key=True),
        *(sa.Column(f"stars_{n}", BigId, nullable=False) for n in range(1, 6)),
    )


def downgrade() -> None:
    for table in ("product_ratings", "reviews", "reviewable_lines"):
        op.drop_table(table)
