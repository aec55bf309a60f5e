"""Coupon templates record who approved them and when: a template created by anyone but an admin waits
(status pending_approval) until an admin or finance staff member who did not create it approves it
(services.member.service.approve_coupon_template).

Existing templates stay active, with no recorded approver (they needed none). The previous release, still serving
during the rollout, inserts templates without the new columns: those are active, as before this release.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

from services.common.db import UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("coupon_templates") as batch:
        batch.add_column(sa.Column("approved_at", UTCDateTime, nullable=True))
        batch.add_column(sa.Column("approved_by", sa.BigInteger, nullable=True))


def downgrade() -> None:
    # A template still waiting would take claims under the previous release: it never approved anything.
    op.execute("UPDATE coupon_templates SET status = 'disabled', disable_reason = 'not approved before downgrade' "
               "WHERE status = 'pending_approval'")
    with op.batch_alter_table("coupon_templates") as batch:
        for column in ("approved_by", "approved_at"):
            batch.drop_column(column)
