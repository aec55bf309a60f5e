"""Passwords the create-staff / create-admin command sets on existing accounts are audited too, with no actor.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("user_password_sets") as batch:  # SQLite alters a column by copying the table
        batch.alter_column("actor_id", existing_type=sa.BigInteger, nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM user_password_sets WHERE actor_id IS NULL")
    with op.batch_alter_table("user_password_sets") as batch:
        batch.alter_column("actor_id", existing_type=sa.BigInteger, nullable=False)
