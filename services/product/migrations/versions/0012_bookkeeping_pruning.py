"""Bookkeeping pruning and dead-letter resolutions (services.common.pruning, services.common.deadletters): the
pruning job deletes outbox, processed_events and idempotency_keys rows by age, through an index each on that age
(built concurrently: every table takes writes throughout), and a dead letter replayed or discarded is recorded, by
whom and when, in dead_letter_resolutions.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from alembic import op

from services.common.deadletters import create_dead_letter_resolutions
from services.common.pruning import add_pruning_indexes, drop_pruning_indexes

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_dead_letter_resolutions(op)  # first: the index builds commit it, and a rerun finds it there
    add_pruning_indexes()


def downgrade() -> None:
    drop_pruning_indexes()
    op.drop_table("dead_letter_resolutions")
