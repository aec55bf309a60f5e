"""Review moderation: staff hide a review from its product's page and rating, with a reason.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("reviews", sa.Column("hidden", sa.Boolean, nullable=False, server_default=sa.false()))
    op.add_column("reviews", sa.Column("hidden_reason", sa.String(200), nullable=False, server_default=""))


def downgrade() -> None:
    op.drop_column("reviews", "hidden_reason")
    op.drop_column("reviews", "hidden")
