"""Order 0017's backfill again, for the CLOSED refunds still without paid_after_close_at: a pod of the release before
0017 that heard WeChat Pay pay a closed refund after 0017's backfill ran (during its rollout) recorded only the order's
history step, and acknowledged the notify, so nothing marks it otherwise and its units stayed claimable. Each takes
its step's time (`mark_noted_refunds`, 0017's own statement); refunds already marked are left as they are.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07
"""

from importlib import import_module

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

# A module name starting with a digit is imported by name: one backfill, the one 0017 ran.
_0017 = import_module("services.order.migrations.versions.0017_refund_paid_after_close")


def upgrade() -> None:
    _0017.mark_noted_refunds()


def downgrade() -> None:
    pass  # the marks stay: 0017's downgrade drops the column
