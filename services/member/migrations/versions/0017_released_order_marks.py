"""The member service prunes the marks of orders released before they held points or locked a coupon
(services.member.db.OWN_ROWS): expired_coupon_locks through an index on expired_at (built concurrently: the
checkout-hold sweep and order events write it throughout); points_holds through its (status, created_at) index.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from alembic import op

from services.common.migrations import build_index_concurrently

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    build_index_concurrently("ix_expired_coupon_locks_expired_at", "expired_coupon_locks", ["expired_at"])


def downgrade() -> None:
    op.drop_index("ix_expired_coupon_locks_expired_at", table_name="expired_coupon_locks", if_exists=True)
