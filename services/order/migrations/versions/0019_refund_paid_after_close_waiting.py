"""refunds.paid_after_close_waiting_at: when WeChat Pay paid this CLOSED refund while its amounts were held by open
(PENDING or ABNORMAL) refunds of its order, so neither counted again nor booked paid twice yet (NULL: nothing waits).
Set with `paid_after_close_at`; cleared when the last open refund holding them ends (refunds._decide_waiting): then
it is counted (the holder closed, freeing them) or published refund-paid-twice (the holder was paid).

Nullable, no backfill: a refund reported paid after close before this revision was decided at the report.
The previous release neither reads nor writes it during the rollout: a holder it ends leaves a waiting refund
waiting (the order's history step says so; see services/order/refunds.py `_decide_waiting`).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

from services.common.db import UTCDateTime

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("refunds") as refunds:
        refunds.add_column(sa.Column("paid_after_close_waiting_at", UTCDateTime, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("refunds") as refunds:
        refunds.drop_column("paid_after_close_waiting_at")
