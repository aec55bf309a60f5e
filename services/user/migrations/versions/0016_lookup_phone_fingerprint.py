"""user_lookups.phone_fingerprint: a keyed hash (IDENTITY_FINGERPRINT_KEY) of the phone a staff search named, beside
the masked criteria, so that guesses at one number's hidden digits are told apart in the audit.

Nullable: searches without a phone, and those recorded before, have none; the previous release's pods, which do not
name the column, go on inserting during the upgrade.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("user_lookups", sa.Column("phone_fingerprint", sa.String(64), nullable=True))


def downgrade() -> None:
    op.drop_column("user_lookups", "phone_fingerprint")
