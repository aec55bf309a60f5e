"""withdrawal_decisions: each step of a withdrawal's review kept for good (finance's approvals and rejections with
who and their note, the payout channel's refusals with its reason), which the withdrawal row alone lost: a refusal
put it back under review with its decision cleared and the note overwritten, and the next approval overwrote that.

A new table; the previous release, still serving during the rollout, does not write it, so decisions it takes then
are not recorded here (the withdrawal row keeps its latest state as before).

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

from services.common.db import BigId, UTCDateTime

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "withdrawal_decisions",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("withdrawal_id", sa.BigInteger, sa.ForeignKey("withdrawals.id"), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("actor_id", sa.BigInteger, nullable=True),
        sa.Column("note", sa.String(200), nullable=False),
        sa.Column("decided_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_withdrawal_decisions_withdrawal_id", "withdrawal_decisions", ["withdrawal_id", "id"])


def downgrade() -> None:
    op.drop_table("withdrawal_decisions")
