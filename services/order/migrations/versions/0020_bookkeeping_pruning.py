"""Bookkeeping pruning (services.common.pruning): the pruning job deletes outbox, processed_events and
idempotency_keys rows by age, through an index each on that age (built concurrently: every table takes writes
throughout).

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07
"""

from services.common.pruning import add_pruning_indexes, drop_pruning_indexes

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_pruning_indexes()


def downgrade() -> None:
    drop_pruning_indexes()
