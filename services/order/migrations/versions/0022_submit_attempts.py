"""submit_attempts: the order number each keyed submit last tried, per (user, Idempotency-Key), recorded before
anything is held under it, so that a retry releases the stock, coupon and points a lost attempt still holds
(service._release_lost_attempt). A new table: the previous release, which knows nothing of it, keeps submitting
during the rollout (its attempts are simply not recorded, as before).

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

from services.common.db import UTCDateTime

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "submit_attempts",
        sa.Column("user_id", sa.BigInteger, primary_key=True),
        sa.Column("idempotency_key", sa.String(128), primary_key=True),
        sa.Column("order_no", sa.String(32), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        if_not_exists=True,
    )
    op.create_index("ix_submit_attempts_created_at", "submit_attempts", ["created_at"], if_not_exists=True)


def downgrade() -> None:
    op.drop_table("submit_attempts")
