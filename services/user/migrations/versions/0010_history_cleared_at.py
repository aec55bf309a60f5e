"""When each shopper last cleared their browsing history: a product-viewed event from before then, applied late,
must not bring a cleared product back.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

from services.common.db import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("history_cleared_at", UTCDateTime, nullable=True))


def downgrade() -> None:
    op.drop_column("users", "history_cleared_at")
