"""job_rounds: when the payment and refund reconciliation jobs last started a round (services.common.uow
one_round_at_a_time), so that their replicas, each on its own timer, run one round per interval between them.

A new table: the previous release never reads it and runs on during the rollout (its rounds skip only while another
is under way, as before).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

from services.common.db import UTCDateTime

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_rounds",
        sa.Column("job", sa.String(64), primary_key=True),
        sa.Column("started_at", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("job_rounds")
