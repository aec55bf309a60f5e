"""限购: a product's purchase limit per shopper (products.max_per_shopper), 0 = no limit.

A constant default: every product keeps selling as before, and adding the column rewrites no rows on PostgreSQL. The
previous release neither reads nor writes it during the rollout (its inserts take the default).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("products", sa.Column("max_per_shopper", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    op.drop_column("products", "max_per_shopper")
