"""refunds.points_returned: the points the shopper spent on the refunded units, credited back by the member service
with the refund's order-refunded (cancel-unshipped's refunds; every other refund, and every one made so far, 0).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

from services.common.migrations import add_check_constraint

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # add_check_constraint validates the refunds after this revision's ADD COLUMN has committed (writes go on), and a
    # run cut short while validating runs the ADD COLUMN again.
    op.add_column("refunds", sa.Column("points_returned", sa.BigInteger, nullable=False, server_default="0"),
                  if_not_exists=op.get_bind().dialect.name == "postgresql")  # SQLite has no ADD COLUMN IF NOT EXISTS
    add_check_constraint("refunds", "ck_refunds_points_not_negative", "points_returned >= 0")


def downgrade() -> None:
    with op.batch_alter_table("refunds") as refunds:
        refunds.drop_constraint("ck_refunds_points_not_negative", type_="check")
        refunds.drop_column("points_returned")
