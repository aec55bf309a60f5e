"""Coupon templates can be disabled (no new claims; coupons claimed stay usable), recording who created and who
disabled each, when and why (services.member.service.disable_coupon_template).

Existing templates are active and have no recorded creator. The previous release, still serving during the
rollout, inserts templates without the new columns: their server defaults make those active.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

from services.common.db import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("coupon_templates") as batch:
        batch.add_column(sa.Column("status", sa.String(16), nullable=False, server_default="active"))
        batch.add_column(sa.Column("created_by", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("disabled_at", UTCDateTime, nullable=True))
        batch.add_column(sa.Column("disabled_by", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("disable_reason", sa.String(200), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("coupon_templates") as batch:
        for column in ("disable_reason", "disabled_by", "disabled_at", "created_by", "status"):
            batch.drop_column(column)
