"""Profile fields and WeChat ids on users; addresses; identity verifications; the role-change audit.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

from services.common.db import BigId, UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("gender", sa.String(8), nullable=False, server_default="unknown"))
        batch.add_column(sa.Column("birthday", sa.Date, nullable=True))
        batch.add_column(sa.Column("region", sa.String(64), nullable=False, server_default=""))
    op.create_table(
        "addresses",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("user_id", BigId, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("receiver_name", sa.String(64), nullable=False),
        sa.Column("receiver_phone", sa.String(20), nullable=False),
        sa.Column("province", sa.String(16), nullable=False),
        sa.Column("city", sa.String(64), nullable=False),
        sa.Column("district", sa.String(64), nullable=False),
        sa.Column("detail", sa.String(255), nullable=False),
        sa.Column("is_default", sa.Boolean, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_addresses_user_id", "addresses", ["user_id"])
    op.create_index("ux_addresses_one_default", "addresses", ["user_id"], unique=True,
                    postgresql_where=sa.text("is_default"), sqlite_where=sa.text("is_default"))
    op.create_table(
        "identity_verifications",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("user_id", BigId, sa.ForeignKey("users.id"), nullable=False, unique=True),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("real_name_ciphertext", sa.LargeBinary, nullable=False),
        sa.Column("id_number_ciphertext", sa.LargeBinary, nullable=False),
        sa.Column("id_number_fingerprint", sa.String(64), nullable=False, unique=True),
        sa.Column("verified_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "user_role_changes",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("user_id", BigId, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("actor_id", sa.BigInteger, nullable=True),
        sa.Column("before", sa.String(255), nullable=False),
        sa.Column("after", sa.String(255), nullable=False),
        sa.Column("changed_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_user_role_changes_user_id", "user_role_changes", ["user_id"])


def downgrade() -> None:
    for table in ("user_role_changes", "identity_verifications", "addresses"):
        op.drop_table(table)
    with op.batch_alter_table("users") as batch:
        for column in ("region", "birthday", "gender"):
            batch.drop_column(column)
