"""The auto-confirm clock pauses while an after-sales case is open: orders.confirm_clock_at, where it counts from
once cases held it (shipped_at moved on by the time they were open; NULL: shipped_at, as for every order so far).

Nothing to backfill: the auto-confirm job works the clock out from the order's cases when shipped_at says it is
due, and writes it here when the cases moved it on; an order with a case open is not picked at all.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

from services.common.db import UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orders") as orders:
        orders.add_column(sa.Column("confirm_clock_at", UTCDateTime, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orders") as orders:
        orders.drop_column("confirm_clock_at")
