"""After-sales case steps say what the case's shopper sees of them: `shopper_visible` (staff see every step) and
`shopper_reason` (what the shopper is told instead of the reason staff read), as aftersales.CaseStep.

Every step recorded before changed the case's status, so the shopper sees each (as they did). Its reason is kept
for them only where they wrote it (their request, their return parcel, their withdrawal) or the code wrote it for
them (a return not sent back in time, refunded, a 0-fen refund); where staff typed it (the decision's note or
reject reason, the receiving note) or it is written for staff (the refund engine's error codes, what to do about an
ABNORMAL refund), the shopper reads the fixed wording the code writes now (aftersales.SHOPPER_WORDS). A reject
reason typed before is not shown: staff typed it as a note, not knowing whether the shopper would read it. No step
is dropped and no reason changed: staff still read every step as it was recorded.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# (status before, status after) -> what the shopper is told of that step; the code writes the same
# (aftersales.SHOPPER_WORDS, and the use cases for the shopper's own words). A change not listed: no reason.
SHOPPER_REASON = """
CASE
  WHEN steps.before_status IS NULL THEN after_sale_steps.reason
  WHEN steps.status IN ('RETURN_SHIPPED', 'WITHDRAWN') THEN after_sale_steps.reason
  WHEN steps.status = 'REFUNDED' AND after_sale_steps.reason = 'nothing to refund (0 fen paid for these units)'
    THEN after_sale_steps.reason
  WHEN steps.status = 'REFUNDED' THEN 'refunded'
  WHEN steps.before_status = 'REQUESTED' AND steps.status = 'REFUNDING' THEN 'refund approved'
  WHEN steps.before_status = 'REQUESTED' AND steps.status = 'AWAITING_RETURN'
    THEN 'return approved: please send the goods back'
  WHEN steps.status = 'REJECTED' THEN 'request declined'
  WHEN steps.before_status = 'RETURN_SHIPPED' AND steps.status = 'REFUNDING' THEN 'returned goods received'
  WHEN steps.status = 'REFUND_FAILED' THEN 'the refund did not go through: customer service will follow up'
  WHEN steps.status = 'REFUND_ABNORMAL' THEN 'the refund is held up at WeChat Pay: customer service is handling it'
  WHEN steps.before_status = 'REFUND_ABNORMAL' AND steps.status = 'REFUNDING' THEN 'the refund is under way again'
  WHEN steps.before_status = 'REFUND_FAILED' AND steps.status = 'REFUNDING' THEN 'refund started again'
  ELSE ''
END"""

# The first step of a case is its request, with the shopper's reason.
BACKFILL = f"""
UPDATE after_sale_steps
SET shopper_visible = TRUE, shopper_reason = {SHOPPER_REASON}
FROM (SELECT id, status, LAG(status) OVER (PARTITION BY case_id ORDER BY id) AS before_status
      FROM after_sale_steps) AS steps
WHERE steps.id = after_sale_steps.id
  AND (steps.before_status IS NULL OR steps.before_status <> steps.status)
"""


def upgrade() -> None:
    with op.batch_alter_table("after_sale_steps") as steps:
        steps.add_column(sa.Column("shopper_visible", sa.Boolean, nullable=False, server_default=sa.false()))
        steps.add_column(sa.Column("shopper_reason", sa.String(255), nullable=False, server_default=""))
    op.execute(BACKFILL)


def downgrade() -> None:
    with op.batch_alter_table("after_sale_steps") as steps:
        steps.drop_column("shopper_reason")
        steps.drop_column("shopper_visible")
