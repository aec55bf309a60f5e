"""Report jobs can be `expired`: the file of a done report is deleted after the retention period.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("report_jobs") as jobs:
        jobs.drop_constraint("ck_report_jobs_status", type_="check")
        jobs.create_check_constraint("ck_report_jobs_status", "status IN ('queued', 'running', 'done', 'failed', 'expired')")
        jobs.create_index("ix_report_jobs_finished", ["status", "finished_at"])


def downgrade() -> None:
    op.execute("UPDATE report_jobs SET status = 'failed', error = 'expired' WHERE status = 'expired'")
    with op.batch_alter_table("report_jobs") as jobs:
        jobs.drop_index("ix_report_jobs_finished")
        jobs.drop_constraint("ck_report_jobs_status", type_="check")
        jobs.create_check_constraint("ck_report_jobs_status", "status IN ('queued', 'running', 'done', 'failed')")
