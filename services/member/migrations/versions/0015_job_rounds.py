"""job_rounds: when each member job's last round started and where its sweeps stopped (services.common.uow
one_round_at_a_time), so that a round goes on after where the last one stopped whichever replica ran it (the points
expiry's walk of every holder kept its place per process: each replica began its own walk again).

A new table: the previous release never reads it and runs on during the rollout.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

from services.common.db import UTCDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_rounds",
        sa.Column("job", sa.String(64), primary_key=True),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("resume_after", sa.JSON(none_as_null=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("job_rounds")
