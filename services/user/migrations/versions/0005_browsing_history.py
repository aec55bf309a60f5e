"""Browsing history: the products each shopper viewed, latest view per product (product-viewed events).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

from services.common.db import BigId, UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "browsing_history",
        sa.Column("user_id", BigId, sa.ForeignKey("users.id"), primary_key=True),
        sa.Column("product_id", sa.BigInteger, primary_key=True),
        sa.Column("viewed_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_browsing_history_user_viewed", "browsing_history", ["user_id", "viewed_at"])


def downgrade() -> None:
    op.drop_table("browsing_history")
