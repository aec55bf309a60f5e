"""report_downloads: who downloaded which export, when (services.analytics.reports.read_report). Any report reader may
download any job of a kind they may read, by its sequential id, and nothing said who did.

A new table; the previous release, still serving during the rollout, does not write it, so downloads through it then
are not recorded.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-08
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
        "report_downloads",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("report_id", sa.BigInteger, sa.ForeignKey("report_jobs.id"), nullable=False),
        sa.Column("actor_id", sa.BigInteger, nullable=False),
        sa.Column("downloaded_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_report_downloads_report_id", "report_downloads", ["report_id", "id"])
    op.create_index("ix_report_downloads_actor_at", "report_downloads", ["actor_id", "downloaded_at"])


def downgrade() -> None:
    op.drop_table("report_downloads")
