"""What the shopper reads of a withdrawal's decision, apart from finance's note: `withdrawals.shopper_reason` (finance's
words for the shopper, or a fixed sentence when the payout channel refused or failed the transfer) and the same in each
step of `withdrawal_decisions`. The note, with the channel's reasons, was shown to the shopper word for word.

Withdrawals recorded before keep their notes for staff and tell the shopper what the code tells them now where that
is a fixed sentence: a FAILED one, and one back under review after the channel refused its transfer (its note as
Withdrawal.payout_refused writes it); every other one (and every step before) tells the shopper nothing apart. The
previous release, still serving during the rollout, neither writes nor reads the column (the server default).

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

TABLES = ("withdrawals", "withdrawal_decisions")

# As services.common.formats.PAYOUT_FAILED_SHOPPER and PAYOUT_REFUSED_SHOPPER; by ix_withdrawals_status_id.
BACKFILL = """
UPDATE withdrawals SET shopper_reason = CASE status
  WHEN 'FAILED' THEN 'the transfer failed; the amount is back in your balance'
  ELSE 'the transfer could not be made; finance will review it' END
WHERE status = 'FAILED' OR (status = 'PENDING_REVIEW' AND note LIKE '[payout refused: %')
"""


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for table in TABLES:
        op.add_column(table, sa.Column("shopper_reason", sa.String(200), nullable=False, server_default=""),
                      if_not_exists=postgresql)  # SQLite has no ADD COLUMN IF NOT EXISTS (nor needs it)
    op.execute(BACKFILL)


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("shopper_reason")
