"""ix_coupons_template_status (template_id, status): staff's list of coupon templates counts each page's coupons by
template and status in one grouped read, from this index rather than a scan of every coupon. Built concurrently on
PostgreSQL (services.common.migrations.build_index_concurrently): claims and orders write coupons throughout.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07
"""

from alembic import op

from services.common.migrations import build_index_concurrently

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    build_index_concurrently("ix_coupons_template_status", "coupons", ["template_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_coupons_template_status", "coupons")
