"""Staff reads of shoppers' member records, audited (services.member.service.look_up_member), as the user service's
user_lookups audits staff searches for users: who read whose record, when, and whether they were a member.

A new table nothing reads on the request path; the previous release, still serving during the rollout, never writes
it (it has no LookUpMember).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

from services.common.db import BigId, UTCDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "member_lookups",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("actor_id", sa.BigInteger, nullable=False),
        sa.Column("user_id", sa.BigInteger, nullable=False),
        sa.Column("found", sa.Boolean, nullable=False),
        sa.Column("looked_up_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_member_lookups_actor_at", "member_lookups", ["actor_id", "looked_up_at"])
    op.create_index("ix_member_lookups_user_at", "member_lookups", ["user_id", "looked_up_at"])


def downgrade() -> None:
    op.drop_table("member_lookups")
