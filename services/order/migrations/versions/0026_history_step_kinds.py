"""Order history steps say which step they are: `kind`, a code from a closed set (services.common.order_steps), for
clients that show the history in their own language instead of string-matching `reason` (English wording, channel
codes and the shopper's own words mixed).

Steps recorded before get theirs from what the code recorded then, exactly: a step that changed the order's status
(the first step, or one whose status differs from the step before it) from its statuses before and after, with the
actor or reason where one change has two kinds (who cancelled an unpaid order, whether the receipt was confirmed by
the shopper or the auto-confirm job, a parcel's shipping or the unshipped units' cancellation); a step that kept the
status (a note) from its reason's wording (service.py, refunds.py, aftersales.py, wallet_reviews.py, domain.py).
No reason is changed. The server default "" is for a step a pod of the release before writes during the rollout.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None

# The wording the code wrote: service.PAID_TOO_LATE, Order.cancel_unshipped, Order.ship's partial step, and the notes
# on payments (service.LATE_PAYMENT, DOUBLE_PAYMENT, WALLET_LATE_PAYMENT, wallet_reviews); every other note is a
# refund's (refunds.py, aftersales.py).
KIND = """
CASE
  WHEN steps.before_status IS NULL THEN 'placed'
  WHEN steps.before_status = steps.status THEN
    CASE
      WHEN order_transitions.reason LIKE 'partly shipped: %' THEN 'partly_shipped'
      WHEN order_transitions.reason LIKE 'paid after cancellation, refunded%'
        OR order_transitions.reason LIKE 'paid again with WeChat Pay, refunded%'
        OR order_transitions.reason LIKE 'paid from the wallet too late, refunded%'
        OR order_transitions.reason LIKE 'wallet charge of %'
        THEN 'payment_note'
      ELSE 'refund_note'
    END
  WHEN steps.status = 'CLOSED' THEN 'closed'
  WHEN steps.before_status = 'PENDING_PAYMENT' AND steps.status = 'PAID' THEN 'paid'
  WHEN steps.before_status = 'PENDING_PAYMENT' AND steps.status = 'CANCELLED' THEN
    CASE
      WHEN order_transitions.actor LIKE 'user:%' THEN 'cancelled_by_shopper'
      WHEN order_transitions.reason = 'paid too late: its stock may be on sale again' THEN 'cancelled_paid_too_late'
      ELSE 'cancelled_unpaid_timeout'
    END
  WHEN steps.before_status = 'PAID' AND steps.status = 'CANCEL_REQUESTED' THEN 'cancel_requested'
  WHEN steps.before_status = 'PAID' AND steps.status = 'SHIPPED' THEN
    CASE WHEN order_transitions.reason LIKE 'unshipped units cancelled (%' THEN 'unshipped_cancelled' ELSE 'shipped' END
  WHEN steps.before_status = 'CANCEL_REQUESTED' AND steps.status = 'REFUNDING' THEN 'cancel_approved'
  WHEN steps.before_status = 'CANCEL_REQUESTED' AND steps.status = 'PAID' THEN 'cancel_rejected'
  WHEN steps.before_status = 'SHIPPED' AND steps.status = 'COMPLETED' THEN
    CASE WHEN order_transitions.actor = 'system:auto-confirm' THEN 'auto_completed' ELSE 'received' END
  WHEN steps.before_status = 'REFUNDING' AND steps.status = 'REFUNDED' THEN 'refunded_in_full'
  ELSE ''
END"""

BACKFILL = f"""
UPDATE order_transitions
SET kind = {KIND}
FROM (SELECT id, status, LAG(status) OVER (PARTITION BY order_id ORDER BY id) AS before_status
      FROM order_transitions) AS steps
WHERE steps.id = order_transitions.id
"""


def upgrade() -> None:
    with op.batch_alter_table("order_transitions") as steps:
        steps.add_column(sa.Column("kind", sa.String(32), nullable=False, server_default=""))
    op.execute(BACKFILL)


def downgrade() -> None:
    with op.batch_alter_table("order_transitions") as steps:
        steps.drop_column("kind")
