"""Indexes for the ledger exports (reports `orders` and `money`), partial: a page view kept costs nothing more.

`ix_raw_events_ledger (day, occurred_at, event_id)` over the order and money events pages a period's ledger
events in time order; `ix_raw_events_order_follow_ups (aggregate_id)` over order-paid, -cancelled and -refunded
finds an order's later events by its number (the order service's aggregate id). On PostgreSQL both are built
concurrently (services.common.migrations.build_index_concurrently): the events table takes writes throughout.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

from services.common.migrations import build_index_concurrently

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# As in services.analytics.db at the time of writing (a migration does not import the code it migrates).
ORDER_FOLLOW_UPS = ("order-paid", "order-cancelled", "order-refunded")
LEDGER_EVENTS = ("order-created", *ORDER_FOLLOW_UPS, "member-recharged", "member-withdrawn")


def _of_types(values: tuple[str, ...]) -> sa.TextClause:
    return sa.text(f"event_type IN ({', '.join(repr(value) for value in values)})")


def upgrade() -> None:
    build_index_concurrently("ix_raw_events_ledger", "raw_events", ["day", "occurred_at", "event_id"],
                             where=_of_types(LEDGER_EVENTS))
    build_index_concurrently("ix_raw_events_order_follow_ups", "raw_events", ["aggregate_id"],
                             where=_of_types(ORDER_FOLLOW_UPS))


def downgrade() -> None:
    op.drop_index("ix_raw_events_order_follow_ups", "raw_events")
    op.drop_index("ix_raw_events_ledger", "raw_events")
