"""Wallet payments recorded before the wallet is charged: orders.wallet_attempt_at, set until what the wallet
did is known (reconciliation asks the member service about it; the payment timeout waits for it).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

from services.common.db import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orders") as orders:
        orders.add_column(sa.Column("wallet_attempt_at", UTCDateTime, nullable=True))
    op.create_index("ix_orders_wallet_attempt", "orders", ["wallet_attempt_at"],
                    postgresql_where=sa.text("wallet_attempt_at IS NOT NULL"),
                    sqlite_where=sa.text("wallet_attempt_at IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("ix_orders_wallet_attempt", "orders")
    with op.batch_alter_table("orders") as orders:
        orders.drop_column("wallet_attempt_at")
