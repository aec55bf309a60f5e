"""withdrawals.payout_confirm: what the shopper confirms a WeChat Pay transfer awaiting them with (mch_id, app_id and
the bill's package_info for wx.requestMerchantTransfer), while the withdrawal is PAYING; NULL otherwise.

A nullable column: the previous release never reads it and runs on during the rollout.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("withdrawals") as batch:
        batch.add_column(sa.Column("payout_confirm", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("withdrawals") as batch:
        batch.drop_column("payout_confirm")
