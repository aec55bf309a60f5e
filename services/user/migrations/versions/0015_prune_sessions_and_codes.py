"""The user service prunes its own rows that stop mattering (services.user.db.OWN_ROWS): refresh tokens of ended
sessions, old SMS codes and attempt counts, each table through an index on the age it is pruned by (built
concurrently: logins and refreshes go on throughout).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from alembic import op

from services.common.migrations import build_index_concurrently

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

INDEXES = {"ix_refresh_tokens_expires_at": ("refresh_tokens", "expires_at"),
           "ix_sms_codes_created_at": ("sms_codes", "created_at"),
           "ix_account_attempts_attempted_at": ("account_attempts", "attempted_at")}


def upgrade() -> None:
    for name, (table, column) in INDEXES.items():
        build_index_concurrently(name, table, [column])


def downgrade() -> None:
    for name, (table, _) in INDEXES.items():
        op.drop_index(name, table_name=table, if_exists=True)
