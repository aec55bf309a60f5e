"""A staff member's export jobs, newest first (reports.list_reports, GET /admin/reports), indexed by who asked for
them. Built concurrently on PostgreSQL (services.common.migrations.build_index_concurrently): report jobs take writes
from the report runner throughout.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from alembic import op

from services.common.migrations import build_index_concurrently

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    build_index_concurrently("ix_report_jobs_requester", "report_jobs", ["requested_by", "id"])


def downgrade() -> None:
    op.drop_index("ix_report_jobs_requester", table_name="report_jobs")
