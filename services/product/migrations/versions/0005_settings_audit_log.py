"""Settings audit log: who created or changed a category, a brand or a delivery estimate, with before and after.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

from services.common.db import BigId, UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "settings_audit_log",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("entity", sa.String(16), nullable=False),
        sa.Column("entity_key", sa.String(64), nullable=False),
        sa.Column("actor_id", BigId, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("before", sa.JSON, nullable=True),
        sa.Column("after", sa.JSON, nullable=True),
    )
    op.create_index("ix_settings_audit_log_entity_id", "settings_audit_log", ["entity", "id"])


def downgrade() -> None:
    op.drop_table("settings_audit_log")
