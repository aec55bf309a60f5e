"""The release marks among points holds (0-point RELEASED holds, member 0017), indexed for the pruning job: through
ix_points_holds_status_created its rule read every RELEASED hold ever (each cancelled order that used points keeps
one) to find the few with 0 points. Built concurrently on PostgreSQL (build_index_concurrently): holds take writes
throughout.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07
"""

from alembic import op

from services.common.migrations import build_index_concurrently

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    build_index_concurrently("ix_points_holds_status_points_created", "points_holds", ["status", "points", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_points_holds_status_points_created", table_name="points_holds")
