"""Daily statistics, outbox, processed events and dead letters.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

from services.common.outbox import create_infra_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "daily_stats",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("new_users", sa.Integer, nullable=False),
    )
    create_infra_tables(op)


def downgrade() -> None:
    for table in ("dead_letters", "processed_events", "outbox", "daily_stats"):
        op.drop_table(table)
