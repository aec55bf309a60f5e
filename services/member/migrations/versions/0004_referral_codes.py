"""Members' own invite (referral) codes and who invited them.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("members") as batch:
        batch.add_column(sa.Column("referral_code", sa.String(16), nullable=True))
        batch.add_column(sa.Column("invited_by", sa.BigInteger, nullable=True))
        batch.create_unique_constraint("uq_members_referral_code", ["referral_code"])
        batch.create_index("ix_members_invited_by", ["invited_by"])


def downgrade() -> None:
    with op.batch_alter_table("members") as batch:
        batch.drop_index("ix_members_invited_by")
        batch.drop_constraint("uq_members_referral_code", type_="unique")
        batch.drop_column("invited_by")
        batch.drop_column("referral_code")
