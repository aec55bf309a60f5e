"""The money ledger's partial index takes the paid plans bought with the wallet (member-plan-subscribed) and the
refunds paid twice (refund-paid-twice).

`ix_raw_events_ledger` is rebuilt with the two new event types in its condition, so the money export, which now
reads them too, still pages through its events on the index (a query whose types are not all among an index's
cannot use it).
On PostgreSQL it is built concurrently (services.common.migrations.build_index_concurrently), as in 0008.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

import sqlalchemy as sa

from services.common.migrations import build_index_concurrently

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# As in services.analytics.db at the time of writing (a migration does not import the code it migrates).
BEFORE = ("order-created", "order-paid", "order-cancelled", "order-refunded", "member-recharged", "member-withdrawn",
          "late-payment-received", "late-payment-refunded")
LEDGER_EVENTS = (*BEFORE, "member-plan-subscribed", "refund-paid-twice")


def _of_types(values: tuple[str, ...]) -> sa.TextClause:
    return sa.text(f"event_type IN ({', '.join(repr(value) for value in values)})")


def _ledger_index(types: tuple[str, ...]) -> None:
    build_index_concurrently("ix_raw_events_ledger", "raw_events", ["day", "occurred_at", "event_id"],
                             where=_of_types(types))


def upgrade() -> None:
    _ledger_index(LEDGER_EVENTS)


def downgrade() -> None:
    _ledger_index(BEFORE)
