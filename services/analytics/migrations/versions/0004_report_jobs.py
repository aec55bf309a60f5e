"""Report jobs: exports asked for through the admin API, run by the analytics service's job runner.

Raw events get an index on (day, event_id): an export of a period's events reads them in keyset pages.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

from services.common.db import BigId, UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "report_jobs",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("format", sa.String(8), nullable=False),
        sa.Column("first_day", sa.Date, nullable=False),
        sa.Column("last_day", sa.Date, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("percent", sa.Integer, nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("file_name", sa.String(128), nullable=False),
        sa.Column("error", sa.String(256), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("requested_by", sa.BigInteger, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("heartbeat_at", UTCDateTime, nullable=True),
        sa.Column("finished_at", UTCDateTime, nullable=True),
        sa.CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name="ck_report_jobs_status"),
        sa.CheckConstraint("percent BETWEEN 0 AND 100", name="ck_report_jobs_percent"),
        sa.CheckConstraint("first_day <= last_day", name="ck_report_jobs_period"),
    )
    op.create_index("ix_report_jobs_status", "report_jobs", ["status", "id"])
    op.create_index("ix_raw_events_day_id", "raw_events", ["day", "event_id"])


def downgrade() -> None:
    op.drop_index("ix_raw_events_day_id", "raw_events")
    op.drop_table("report_jobs")
