"""Phone binding audit, staff user lookups (audited), the nickname index staff search by.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

from services.common.db import BigId, UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "user_phone_changes",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("user_id", BigId, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("before", sa.String(20), nullable=False),
        sa.Column("after", sa.String(20), nullable=False),
        sa.Column("changed_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_user_phone_changes_user_id", "user_phone_changes", ["user_id"])
    op.create_table(
        "user_lookups",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("actor_id", sa.BigInteger, nullable=False),
        sa.Column("criteria", sa.String(255), nullable=False),
        sa.Column("user_ids", sa.Text, nullable=False),
        sa.Column("total", sa.Integer, nullable=False),
        sa.Column("looked_up_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_user_lookups_actor_at", "user_lookups", ["actor_id", "looked_up_at"])
    op.create_index("ix_users_nickname", "users", ["nickname"], postgresql_ops={"nickname": "text_pattern_ops"})


def downgrade() -> None:
    op.drop_index("ix_users_nickname", "users")
    op.drop_table("user_lookups")
    op.drop_table("user_phone_changes")
