"""Order lines remember whether the order's coupon applies to them (a coupon limited to categories is
carried by the lines of those categories alone when refunds ask what a line was paid).

Orders placed before keep the split they were refunded by so far: the coupon over every line.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("order_lines") as order_lines:
        order_lines.add_column(sa.Column("coupon_applied", sa.Boolean, nullable=False, server_default=sa.true()))


def downgrade() -> None:
    with op.batch_alter_table("order_lines") as order_lines:
        order_lines.drop_column("coupon_applied")
