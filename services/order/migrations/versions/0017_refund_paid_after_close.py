"""refunds.paid_after_close_at: when WeChat Pay reported paid a refund closed here (NULL: never). Its units then count
as refunded again for after-sales (`aftersales.claimable_units`), though the refund stays CLOSED.

Backfill: a refund reported so before this revision has its order's history step (`refunds.paid_after_close_note`,
"refund <no> was closed here but WeChat Pay paid it: ..."); it takes that step's time. Its amounts are not reserved
again here (the code does that only when they fit, at the report): finance already had the step to check. A step an
old pod records after this ran is marked by the same rule by the refund fallback job (`refunds.mark_noted_refund`).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

from services.common.db import UTCDateTime

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("refunds") as refunds:
        refunds.add_column(sa.Column("paid_after_close_at", UTCDateTime, nullable=True))
    mark_noted_refunds()


def mark_noted_refunds() -> None:
    """The backfill: every CLOSED refund with the step and no paid_after_close_at takes the
    step's time. Only the few refunds with the step are written (a CLOSED refund without one keeps NULL, untouched)."""
    noted = """
        FROM order_transitions t WHERE t.order_id = refunds.order_id
          AND t.reason LIKE 'refund ' || refunds.refund_no || ' was closed here but WeChat Pay paid it:%'"""
    op.execute(f"UPDATE refunds SET paid_after_close_at = (SELECT min(t.at) {noted}) "
               f"WHERE status = 'CLOSED' AND paid_after_close_at IS NULL AND EXISTS (SELECT 1 {noted})")


def downgrade() -> None:
    with op.batch_alter_table("refunds") as refunds:
        refunds.drop_column("paid_after_close_at")
