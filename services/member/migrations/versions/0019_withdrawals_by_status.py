"""Withdrawals by status (finance's queue, GET /admin/withdrawals?status=, in id order; the payout job's PAYING ones
every minute, `paying` and `count_paying_before`): each was a seq scan of every withdrawal ever (70-110 ms at
300k). Built concurrently on PostgreSQL (services.common.migrations.build_index_concurrently): withdrawals take
writes throughout.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07
"""

from alembic import op

from services.common.migrations import build_index_concurrently

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    build_index_concurrently("ix_withdrawals_status_id", "withdrawals", ["status", "id"])


def downgrade() -> None:
    op.drop_index("ix_withdrawals_status_id", table_name="withdrawals")
