"""Refresh tokens keep when their session (family) started, its login: a session carrying staff roles ends a set
time after it however often it is refreshed (STAFF_SESSION_MAX_HOURS).

Nullable: pods of the previous release go on storing tokens without it during the upgrade (the code takes such a
token's own creation as its session's start). Live tokens are backfilled with their family's first token's creation,
the login (refresh tokens are never deleted); spent and revoked ones can never be exchanged and are left alone.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

from services.common.db import UTCDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("refresh_tokens", sa.Column("session_started_at", UTCDateTime, nullable=True))
    op.execute("UPDATE refresh_tokens SET session_started_at = ("
               "SELECT MIN(family.created_at) FROM refresh_tokens AS family"
               " WHERE family.family_id = refresh_tokens.family_id)"
               " WHERE session_started_at IS NULL AND used_at IS NULL AND revoked_at IS NULL")


def downgrade() -> None:
    op.drop_column("refresh_tokens", "session_started_at")
