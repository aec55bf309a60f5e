"""Coupon locks and points holds no order settles expire (services.member.service.expire_checkout_holds): when
each coupon was locked, the indexes the sweep reads, and the coupon locks it released, by order.

Coupons locked before this (or by the previous release during the rollout) have no lock time: the sweep gives
them the time it first sees them, so they expire two hours later.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

from services.common.db import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("coupons") as batch:
        batch.add_column(sa.Column("locked_at", UTCDateTime, nullable=True))
        batch.create_index("ix_coupons_status_locked", ["status", "locked_at"])
    op.create_index("ix_points_holds_status_created", "points_holds", ["status", "created_at"])
    op.create_table(
        "expired_coupon_locks",
        sa.Column("order_no", sa.String(64), primary_key=True),
        sa.Column("coupon_id", sa.BigInteger, nullable=False),
        sa.Column("user_id", sa.BigInteger, nullable=False),
        sa.Column("discount_fen", sa.BigInteger, nullable=False),
        sa.Column("expired_at", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("expired_coupon_locks")
    op.drop_index("ix_points_holds_status_created", table_name="points_holds")
    with op.batch_alter_table("coupons") as batch:
        batch.drop_index("ix_coupons_status_locked")
        batch.drop_column("locked_at")
