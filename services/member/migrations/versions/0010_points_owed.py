"""Points a shopper owes and held points that expired (services.member.service: _owe_points, _expire_points_of).

`points_owed`: per user and kind (the posting kind it is taken back as: order_refunded, points_used), the points a
refund or a late order-paid could not take because the shopper had spent or held them; taken from the next points
credited to the shopper. `points_holds.expired_points`: the part of an unpaid order's hold that was past its term
at an expiry run, taken when the hold is released. Both start at zero: the previous release, still serving during
the rollout, neither writes nor reads them.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

from services.common.migrations import add_check_constraint

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

EXPIRED_WITHIN_POINTS = "ck_points_holds_expired_within_points"
EXPIRED_WITHIN_POINTS_SQL = "expired_points >= 0 AND expired_points <= points"


def upgrade() -> None:
    # points_holds is written on every checkout: add_check_constraint validates its rows after this revision's ADD
    # COLUMN has committed, and a run cut short while validating runs the statements before it again.
    postgresql = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "points_owed",
        sa.Column("user_id", sa.BigInteger, primary_key=True),
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("points", sa.BigInteger, nullable=False),
        sa.CheckConstraint("points >= 0", name="ck_points_owed_non_negative"),
        if_not_exists=True,
    )
    op.add_column("points_holds", sa.Column("expired_points", sa.BigInteger, nullable=False, server_default="0"),
                  if_not_exists=postgresql)  # SQLite has no ADD COLUMN IF NOT EXISTS (nor needs it)
    add_check_constraint("points_holds", EXPIRED_WITHIN_POINTS, EXPIRED_WITHIN_POINTS_SQL)


def downgrade() -> None:
    with op.batch_alter_table("points_holds") as batch:
        batch.drop_constraint(EXPIRED_WITHIN_POINTS, type_="check")
        batch.drop_column("expired_points")
    op.drop_table("points_owed")
