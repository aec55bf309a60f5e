"""skus.spec_key as wide as the longest spec the product service accepts (formats.SPEC_KEY_MAX, 731 characters).

Five specs of 20-character names and 50-character values are valid, but their key is JSON in which `"` and `\\`
take two characters each: up to 731 characters, and VARCHAR(500) made PostgreSQL refuse such a product
(400 VALUE_NOT_STORABLE). Widening a VARCHAR rewrites nothing on PostgreSQL.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("skus") as batch:  # batch: SQLite cannot ALTER a column in place
        batch.alter_column("spec_key", existing_type=sa.String(500), type_=sa.String(731), existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("skus") as batch:
        batch.alter_column("spec_key", existing_type=sa.String(731), type_=sa.String(500), existing_nullable=False)
