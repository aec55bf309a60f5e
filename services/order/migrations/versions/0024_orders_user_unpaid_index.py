"""A shopper's orders awaiting payment, indexed (partial: PENDING_PAYMENT only) for the count every submit makes under
the unpaid orders limit (ORDER_MAX_UNPAID_PER_USER, service._check_unpaid_orders): an index-only count of a few rows,
where ix_orders_user_created would read every order the shopper ever placed. On PostgreSQL it is built concurrently
(services.common.migrations.build_index_concurrently): orders take writes throughout.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

from services.common.migrations import build_index_concurrently

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    build_index_concurrently("ix_orders_user_unpaid", "orders", ["user_id"],
                             where=sa.text("status = 'PENDING_PAYMENT'"))


def downgrade() -> None:
    op.drop_index("ix_orders_user_unpaid", table_name="orders")
