"""Order history steps say what the order's shopper sees of them: `shopper_visible` (staff see every step) and
`shopper_reason` (what the shopper is told instead of the reason staff read), as domain.Transition.

Steps recorded before are shown to the shopper only when they changed the order's status (the first step, or one
whose status differs from the step before it); every other step is a note (a refund stuck at WeChat Pay, a refund
closed by staff with their reason, a late payment credited back, a parcel of a partly shipped order, which the
order's shipments still list) and is for staff. A status change keeps its reason for the shopper only where that
was written for them or by them; where staff typed it (the cancellation review) or it names internal numbers (a
refund's), the shopper is told what the code tells them now. No step is dropped and no reason is changed: staff
still read every step as it was recorded.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# (status before, status after) -> what the shopper is told of that change; the code writes the same (refunds.py,
# service.py, domain.py). A change not listed is shown with no reason.
SHOPPER_REASON = """
CASE
  WHEN steps.before_status IS NULL THEN order_transitions.reason
  WHEN steps.before_status = 'PENDING_PAYMENT' AND steps.status IN ('PAID', 'CANCELLED') THEN order_transitions.reason
  WHEN steps.before_status = 'PAID' AND steps.status IN ('CANCEL_REQUESTED', 'SHIPPED') THEN order_transitions.reason
  WHEN steps.before_status = 'SHIPPED' AND steps.status = 'COMPLETED' THEN order_transitions.reason
  WHEN steps.before_status = 'CANCEL_REQUESTED' AND steps.status = 'PAID' THEN 'cancellation declined'
  WHEN steps.before_status = 'CANCEL_REQUESTED' AND steps.status = 'REFUNDING' THEN 'cancellation approved'
  WHEN steps.before_status = 'REFUNDING' AND steps.status = 'REFUNDED' THEN 'refunded in full'
  ELSE ''
END"""

# The first step of an order is its placement ("placed"); the reasons kept are the shopper's own (cancelling),
# the payment channel, the payment deadline, the carrier and tracking number, and the receipt's confirmation.
BACKFILL = f"""
UPDATE order_transitions
SET shopper_visible = TRUE, shopper_reason = {SHOPPER_REASON}
FROM (SELECT id, status, LAG(status) OVER (PARTITION BY order_id ORDER BY id) AS before_status
      FROM order_transitions) AS steps
WHERE steps.id = order_transitions.id
  AND (steps.before_status IS NULL OR steps.before_status <> steps.status)
"""


def upgrade() -> None:
    with op.batch_alter_table("order_transitions") as steps:
        steps.add_column(sa.Column("shopper_visible", sa.Boolean, nullable=False, server_default=sa.false()))
        steps.add_column(sa.Column("shopper_reason", sa.String(255), nullable=False, server_default=""))
    op.execute(BACKFILL)


def downgrade() -> None:
    with op.batch_alter_table("order_transitions") as steps:
        steps.drop_column("shopper_reason")
        steps.drop_column("shopper_visible")
