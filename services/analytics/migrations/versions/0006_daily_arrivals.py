"""Daily arrivals: a period's distinct visitors, visits, shoppers and funnel steps without reading its member-days.

Per range set (domain.RANGE_SETS: the day sets of the overview, and every union of funnel steps) and day, the
members in it that day by the day each was last in it before (1970-01-01: not in the 365 days before). Backfilled
from daily_members; an index (kind, member, day) finds a member's days around a new one.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# As in services.analytics.domain at the time of writing (a migration does not import the code it migrates).
FUNNEL = ("viewer", "cart_user", "order_user", "payer")
RANGE_SETS = ("visitor", "visit", "active_user",
              *("+".join(k for i, k in enumerate(FUNNEL) if bits & (1 << i)) for bits in range(1, 1 << len(FUNNEL))))
LOOK_BACK_DAYS = 365


def upgrade() -> None:
    op.create_table(
        "daily_arrivals",
        sa.Column("kind", sa.String(48), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("last_seen", sa.Date, nullable=False),
        sa.Column("value", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("kind", "day", "last_seen", name="pk_daily_arrivals"),
    )
    op.create_index("ix_daily_members_member", "daily_members", ["kind", "member", "day"])
    postgresql = op.get_bind().dialect.name == "postgresql"
    reach = f"day - {LOOK_BACK_DAYS}" if postgresql else f"date(day, '-{LOOK_BACK_DAYS} days')"
    never = "DATE '1970-01-01'" if postgresql else "'1970-01-01'"
    for range_set in RANGE_SETS:
        kinds = ", ".join(f"'{kind}'" for kind in range_set.split("+"))
        # Each member's days in the set in order; an arrival's last_seen is the day before it, if recent enough.
        op.execute(
            f"INSERT INTO daily_arrivals (kind, day, last_seen, value) "
            f"SELECT '{range_set}', day, CASE WHEN prev_day IS NULL OR prev_day < {reach} THEN {never} ELSE prev_day END, "
            f"count(*) FROM (SELECT day, lag(day) OVER (PARTITION BY member ORDER BY day) AS prev_day "
            f"FROM (SELECT DISTINCT member, day FROM daily_members WHERE kind IN ({kinds})) AS days) AS arrivals "
            f"GROUP BY 1, 2, 3")


def downgrade() -> None:
    op.drop_index("ix_daily_members_member", "daily_members")
    op.drop_table("daily_arrivals")
