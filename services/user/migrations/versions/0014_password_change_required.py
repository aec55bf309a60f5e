"""A password an admin sets on a staff account must be changed by its owner at the next login (with an SMS code to
their phone) before it starts a session: users.password_change_required.

The server default keeps the previous release's pods, which do not name the column, inserting users during the
upgrade; accounts that exist keep the password they have.

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
    op.add_column("users", sa.Column("password_change_required", sa.Boolean, nullable=False,
                                     server_default=sa.false()))


def downgrade() -> None:
    op.drop_column("users", "password_change_required")
