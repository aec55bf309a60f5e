"""order_lines.spec as wide as the longest spec text a SKU can have (formats.SPEC_TEXT_MAX, 359 characters).

Five specs of 20-character names and 50-character values, written "名:值;名:值", make 359 characters: VARCHAR(255)
made PostgreSQL refuse the order (400 VALUE_NOT_STORABLE), so such a SKU could be put in a cart but never bought.
Widening a VARCHAR rewrites nothing on PostgreSQL.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("order_lines") as batch:  # batch: SQLite cannot ALTER a column in place
        batch.alter_column("spec", existing_type=sa.String(255), type_=sa.String(359), existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("order_lines") as batch:
        batch.alter_column("spec", existing_type=sa.String(359), type_=sa.String(255), existing_nullable=False)
