"""Idempotency keys (services.common.idempotency).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from alembic import op

from services.common.idempotency import create_idempotency_table

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_idempotency_table(op)


def downgrade() -> None:
    op.drop_table("idempotency_keys")
