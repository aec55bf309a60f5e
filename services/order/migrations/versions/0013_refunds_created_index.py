"""Refunds indexed by when they started, for staff's list (GET /admin/refunds): the ended ones (SUCCESS, CLOSED),
listed newest first after those needing staff, are read backwards along it, and a start-time window with no
status narrows by it; ix_refunds_status_created serves only a list of one status. On PostgreSQL it is built
concurrently (services.common.migrations.build_index_concurrently): refunds take writes throughout.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from alembic import op

from services.common.migrations import build_index_concurrently

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    build_index_concurrently("ix_refunds_created", "refunds", ["created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_refunds_created", table_name="refunds")
