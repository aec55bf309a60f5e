"""Staff's order search (SearchOrders: /admin/orders, newest first, optionally by status or a date range), indexed:
with no filter or a status only, the page was a parallel seq scan and a top-N sort of every order (2.6 s at 5M
orders, ~3 s with its count, near the 4 s statement timeout); ix_orders_created and ix_orders_status_created read
the page's 20 rows in order. Built concurrently on PostgreSQL (services.common.migrations.build_index_concurrently):
orders take writes throughout.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-07
"""

from alembic import op

from services.common.migrations import build_index_concurrently

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    build_index_concurrently("ix_orders_created", "orders", ["created_at", "id"])
    build_index_concurrently("ix_orders_status_created", "orders", ["status", "created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_orders_status_created", table_name="orders")
    op.drop_index("ix_orders_created", table_name="orders")
