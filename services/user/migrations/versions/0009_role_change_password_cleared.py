"""Role changes record whether they cleared the password: a shopper's first staff role does (it may be SMS-set).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("user_role_changes",
                  sa.Column("password_cleared", sa.Boolean, nullable=False, server_default=sa.false()))


def downgrade() -> None:
    op.drop_column("user_role_changes", "password_cleared")
