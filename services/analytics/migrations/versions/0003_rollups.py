"""Raw events, daily counters, breakdowns, distinct sets and counted facts replace daily_stats.

Days become Asia/Shanghai days. The new_users already counted move to daily_counters on the
(UTC) days they were counted on: without their raw events they cannot be re-bucketed.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

from services.common.db import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "raw_events",
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("aggregate_id", sa.String(128), nullable=False),
        sa.Column("occurred_at", UTCDateTime, nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_raw_events_day_type", "raw_events", ["day", "event_type"])
    op.create_table(
        "daily_counters",
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("metric", sa.String(32), nullable=False),
        sa.Column("value", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("day", "metric", name="pk_daily_counters"),
    )
    op.create_table(
        "daily_breakdowns",
        sa.Column("dimension", sa.String(16), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("metric", sa.String(32), nullable=False),
        sa.Column("value", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("dimension", "day", "key", "metric", name="pk_daily_breakdowns"),
    )
    op.create_table(
        "daily_members",
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("member", sa.String(160), nullable=False),
        sa.PrimaryKeyConstraint("kind", "day", "member", name="pk_daily_members"),
    )
    op.create_table(
        "counted_facts",
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.PrimaryKeyConstraint("kind", "key", name="pk_counted_facts"),
    )
    op.execute("INSERT INTO daily_counters (day, metric, value) "
               "SELECT day, 'new_users', new_users FROM daily_stats WHERE new_users > 0")
    op.drop_table("daily_stats")


def downgrade() -> None:
    op.create_table(
        "daily_stats",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("new_users", sa.Integer, nullable=False),
    )
    op.execute("INSERT INTO daily_stats (day, new_users) "
               "SELECT day, value FROM daily_counters WHERE metric = 'new_users'")
    for table in ("counted_facts", "daily_members", "daily_breakdowns", "daily_counters", "raw_events"):
        op.drop_table(table)
