"""Staff's moderation list (ListReviews: /admin/reviews, newest first, optionally by product, stars, hidden), indexed
so a page reads its rows in order whatever the filters: ix_reviews_created (no filter, or visible ones),
ix_reviews_rating_created, ix_reviews_product_rating_created, and ix_reviews_hidden_created (partial: the few hidden
ones). ix_reviews_product_created gains the id the list's order ends with (it serves the product page too). Built
concurrently on PostgreSQL (services.common.migrations.build_index_concurrently): reviews take writes throughout.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

from services.common.migrations import build_index_concurrently

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    build_index_concurrently("ix_reviews_created", "reviews", ["created_at", "id"])
    build_index_concurrently("ix_reviews_rating_created", "reviews", ["rating", "created_at", "id"])
    build_index_concurrently("ix_reviews_product_rating_created", "reviews", ["product_id", "rating", "created_at", "id"])
    build_index_concurrently("ix_reviews_hidden_created", "reviews", ["created_at", "id"], where=sa.text("hidden"))
    build_index_concurrently("ix_reviews_product_created", "reviews", ["product_id", "created_at", "id"])


def downgrade() -> None:
    for name in ("ix_reviews_hidden_created", "ix_reviews_product_rating_created", "ix_reviews_rating_created",
                 "ix_reviews_created"):
        op.drop_index(name, table_name="reviews")
    op.drop_index("ix_reviews_product_created", table_name="reviews")
    op.create_index("ix_reviews_product_created", "reviews", ["product_id", "created_at"])
