"""WeChat login: WeChat-only accounts (phone nullable) and the openid bindings.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

from services.common.db import BigId, UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:  # batch: SQLite cannot ALTER a column in place
        batch.alter_column("phone", existing_type=sa.String(20), nullable=True)
    op.create_table(
        "wechat_accounts",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("user_id", BigId, sa.ForeignKey("users.id"), nullable=False, unique=True),
        sa.Column("appid", sa.String(32), nullable=False),
        sa.Column("openid", sa.String(64), nullable=False),
        sa.Column("unionid", sa.String(64), nullable=True),
        sa.Column("bound_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("appid", "openid", name="uq_wechat_accounts_appid_openid"),
    )


def downgrade() -> None:
    op.drop_table("wechat_accounts")
    with op.batch_alter_table("users") as batch:
        batch.alter_column("phone", existing_type=sa.String(20), nullable=False)
