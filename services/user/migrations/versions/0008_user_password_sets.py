"""Audit of staff passwords set by an admin (POST /admin/users/{id}/password): staff cannot set theirs by SMS.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

from services.common.db import BigId, UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "user_password_sets",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("user_id", BigId, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("actor_id", sa.BigInteger, nullable=False),
        sa.Column("set_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_user_password_sets_user_id", "user_password_sets", ["user_id"])


def downgrade() -> None:
    op.drop_table("user_password_sets")
