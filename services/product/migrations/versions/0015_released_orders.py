"""released_orders: orders the order service released before they reserved anything (its compensation of a submit
that gave up on ReserveStock), so that the reservation, should it still run, is refused (services.product.db).

A new table: the previous release never reads it and runs on during the rollout (it neither marks nor refuses).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

from services.common.db import UTCDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "released_orders",
        sa.Column("order_no", sa.String(64), primary_key=True),
        sa.Column("released_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_released_orders_released_at", "released_orders", ["released_at"])


def downgrade() -> None:
    op.drop_table("released_orders")
