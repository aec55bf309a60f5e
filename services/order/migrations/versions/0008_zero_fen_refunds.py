"""Refunds may be of 0 fen: units a category coupon (or a paid-0 order) covered entirely are refunded without
asking a channel, and their refund row records which units went back (services.order.refunds).

Downgrading deletes those 0-fen refunds (and their lines), which the earlier CHECK refuses; the lines keep
their refunded units, so the units stay refunded.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("refunds") as refunds:
        refunds.drop_constraint("ck_refunds_amount_positive", type_="check")
        refunds.create_check_constraint("ck_refunds_amount_not_negative", "amount_fen >= 0")


def downgrade() -> None:
    op.execute("DELETE FROM refund_lines WHERE refund_id IN (SELECT id FROM refunds WHERE amount_fen = 0)")
    op.execute("DELETE FROM refunds WHERE amount_fen = 0")
    with op.batch_alter_table("refunds") as refunds:
        refunds.drop_constraint("ck_refunds_amount_not_negative", type_="check")
        refunds.create_check_constraint("ck_refunds_amount_positive", "amount_fen > 0")
