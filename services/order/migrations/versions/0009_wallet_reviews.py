"""Wallet charges the wallet reconciliation cannot settle (another user's wallet, another amount), left for staff:
one review per order, kept once staff credit the charge back or mark it handled (services/order/wallet_reviews.py).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

from services.common.db import BigId, UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "wallet_reviews",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("order_id", BigId, sa.ForeignKey("orders.id"), nullable=False, unique=True),
        sa.Column("order_no", sa.String(32), nullable=False),
        sa.Column("user_id", sa.BigInteger, nullable=False),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("order_user_id", sa.BigInteger, nullable=False),
        sa.Column("payable_fen", sa.BigInteger, nullable=False),
        sa.Column("problem", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("flagged_at", UTCDateTime, nullable=False),
        sa.Column("resolved_at", UTCDateTime, nullable=True),
        sa.Column("resolved_by", sa.String(64), nullable=False),
        sa.Column("note", sa.String(255), nullable=False),
        sa.Column("refund_no", sa.String(64), nullable=False),
        sa.CheckConstraint("status IN ('OPEN', 'CREDITED', 'HANDLED')", name="ck_wallet_reviews_status"),
    )
    op.create_index("ix_wallet_reviews_status_flagged", "wallet_reviews", ["status", "flagged_at"])


def downgrade() -> None:
    op.drop_index("ix_wallet_reviews_status_flagged", "wallet_reviews")
    op.drop_table("wallet_reviews")
