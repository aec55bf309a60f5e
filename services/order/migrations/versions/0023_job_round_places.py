"""job_rounds.resume_after: where the sweeps of a reconciliation's last round stopped, when its budget ran out
(services.common.uow one_round_at_a_time), so that the next round goes on after them whichever replica runs it, not
after the older place a replica that lost the round lock kept in its process.

A new nullable column: the previous release neither reads nor writes it and runs on during the rollout (its rounds go
on from their own process's places, as before).

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job_rounds") as batch:
        batch.add_column(sa.Column("resume_after", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("job_rounds") as batch:
        batch.drop_column("resume_after")
