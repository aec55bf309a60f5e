"""Points of a paid order's hold given back by refunds of its units (services.member.service._return_refunded_points).

`points_holds.returned_points`: of `points`, those the refunds of units the shop could not supply have given back so
far, so that all of them together credit at most the points the hold kept unexpired (`points` - `expired_points`),
the newest first, as a whole-order cancellation does. Starts at zero: the previous release, still serving during the
rollout, neither writes nor reads it (a hold it returned points of counts them from the next return on).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    op.add_column("points_holds", sa.Column("returned_points", sa.BigInteger, nullable=False, server_default="0"),
                  if_not_exists=postgresql)  # SQLite has no ADD COLUMN IF NOT EXISTS (nor needs it)


def downgrade() -> None:
    with op.batch_alter_table("points_holds") as batch:
        batch.drop_column("returned_points")
