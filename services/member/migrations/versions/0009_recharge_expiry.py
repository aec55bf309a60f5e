"""Recharges can be EXPIRED (not paid by their payment deadline: services.member.service.expire_recharges), and the
reconciliation and expiry jobs read the PENDING ones by age every minute: an index on (status, created_at).

The status column is a free String(16) with no CHECK, so EXPIRED needs no change to it; the previous release, still
serving during the rollout, never writes or reads EXPIRED (its GET /member/recharges would not list one by filter).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_recharges_status_created", "recharges", ["status", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_recharges_status_created", table_name="recharges")
