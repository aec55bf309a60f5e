"""Refunds read before their order's order-paid, waiting for it (services.member.service.apply_order_refunded).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

from services.common.db import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pending_reversals",
        sa.Column("refund_no", sa.String(64), primary_key=True),
        sa.Column("order_no", sa.String(64), nullable=False),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("refunded_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_pending_reversals_order_no", "pending_reversals", ["order_no"])


def downgrade() -> None:
    op.drop_index("ix_pending_reversals_order_no", table_name="pending_reversals")
    op.drop_table("pending_reversals")
