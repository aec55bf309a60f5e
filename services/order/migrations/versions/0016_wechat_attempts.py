"""orders.wechat_attempt: which WeChat Pay transaction of the order a prepay opens (domain.Order.wechat_attempt).

The first is the order number itself, as for every order so far (server default 1: nothing to backfill, and the
previous release, which knows no other, keeps inserting orders during the rollout). A wallet attempt closes the
order's transaction before charging; when the wallet then charges nothing, a WeChat payment opens the next one,
`<order_no>_<attempt>`, since WeChat Pay never takes a payment under a closed number again.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("orders", sa.Column("wechat_attempt", sa.Integer, nullable=False, server_default="1"),
                  if_not_exists=op.get_bind().dialect.name == "postgresql")  # SQLite has no ADD COLUMN IF NOT EXISTS


def downgrade() -> None:
    with op.batch_alter_table("orders") as orders:
        orders.drop_column("wechat_attempt")
