"""Who hid a review and when, kept on the review while it is hidden, for staff's moderation list (ListReviews).

Two nullable columns (no default: no table rewrite). The previous release, running on during the rollout, neither
reads nor writes them: a review it hides shows no one (0) and no time, as do the reviews hidden before this revision
(the product's audit log, hide_review, names who and when for those).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

from services.common.db import BigId, UTCDateTime

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("reviews", sa.Column("hidden_by", BigId, nullable=True))
    op.add_column("reviews", sa.Column("hidden_at", UTCDateTime, nullable=True))


def downgrade() -> None:
    op.drop_column("reviews", "hidden_at")
    op.drop_column("reviews", "hidden_by")
