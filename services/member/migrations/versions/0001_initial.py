"""Outbox, processed events and dead letters.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from alembic import op

from services.common.outbox import create_infra_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_infra_tables(op)


def downgrade() -> None:
    op.drop_table("dead_letters")
    op.drop_table("processed_events")
    op.drop_table("outbox")
