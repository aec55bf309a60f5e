"""Memberships (with paid plans), wallet and points ledgers, points holds, coupons, withdrawals, recharges.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

from services.common.db import BigId, UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

LEDGER_TABLES = ("ledger_postings", "ledger_entries")


def upgrade() -> None:
    op.create_table(
        "members",
        sa.Column("user_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("member_no", sa.String(24), nullable=True, unique=True),
        sa.Column("channel", sa.String(16), nullable=True),
        sa.Column("invite_code", sa.String(32), nullable=True),
        sa.Column("total_spend_fen", sa.BigInteger, nullable=False),
        sa.Column("joined_at", UTCDateTime, nullable=True),
        sa.Column("plan_id", sa.Integer, nullable=True),
        sa.Column("plan_expires_at", UTCDateTime, nullable=True),
        sa.CheckConstraint("total_spend_fen >= 0", name="ck_members_total_spend_non_negative"),
    )
    op.create_table(
        "ledger_accounts",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.BigInteger, nullable=False),
        sa.Column("account", sa.String(32), nullable=False),
        sa.Column("balance", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("user_id", "account", name="uq_ledger_accounts_user_account"),
        sa.CheckConstraint("user_id = 0 OR balance >= 0", name="ck_ledger_accounts_user_balance_non_negative"),
    )
    op.create_table(
        "ledger_postings",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(160), nullable=False, unique=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("reference", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "ledger_entries",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("posting_id", sa.BigInteger, sa.ForeignKey("ledger_postings.id"), nullable=False),
        sa.Column("account_id", sa.BigInteger, sa.ForeignKey("ledger_accounts.id"), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("balance_after", sa.BigInteger, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("posting_id", "account_id", name="uq_ledger_entries_posting_account"),
    )
    op.create_index("ix_ledger_entries_account_id", "ledger_entries", ["account_id", "id"])
    op.create_table(
        "points_holds",
        sa.Column("order_no", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.BigInteger, nullable=False),
        sa.Column("points", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "order_credits",
        sa.Column("order_no", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.BigInteger, nullable=False),
        sa.Column("paid_fen", sa.BigInteger, nullable=False),
        sa.Column("points", sa.BigInteger, nullable=False),
        sa.Column("refunded_fen", sa.BigInteger, nullable=False),
        sa.Column("points_reversed", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "coupon_templates",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("percent_off", sa.Integer, nullable=False),
        sa.Column("threshold_fen", sa.BigInteger, nullable=False),
        sa.Column("cap_fen", sa.BigInteger, nullable=False),
        sa.Column("total", sa.Integer, nullable=False),
        sa.Column("issued", sa.Integer, nullable=False),
        sa.Column("per_user_limit", sa.Integer, nullable=False),
        sa.Column("valid_from", UTCDateTime, nullable=False),
        sa.Column("valid_to", UTCDateTime, nullable=False),
        sa.Column("categories", sa.String(2000), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.CheckConstraint("issued >= 0 AND issued <= total", name="ck_coupon_templates_issued_within_total"),
    )
    op.create_table(
        "coupons",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("template_id", sa.BigInteger, sa.ForeignKey("coupon_templates.id"), nullable=False),
        sa.Column("user_id", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("order_no", sa.String(64), nullable=True, unique=True),
        sa.Column("discount_fen", sa.BigInteger, nullable=False),
        sa.Column("claimed_at", UTCDateTime, nullable=False),
        sa.Column("used_at", UTCDateTime, nullable=True),
    )
    op.create_index("ix_coupons_user_template", "coupons", ["user_id", "template_id"])
    op.create_table(
        "withdrawals",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("withdrawal_no", sa.String(32), nullable=False, unique=True),
        sa.Column("user_id", sa.BigInteger, nullable=False),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("note", sa.String(200), nullable=False),
        sa.Column("payout_txn_id", sa.String(64), nullable=False),
        sa.Column("decided_by", sa.BigInteger, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("decided_at", UTCDateTime, nullable=True),
        sa.CheckConstraint("amount_fen > 0", name="ck_withdrawals_amount_positive"),
    )
    op.create_index("ix_withdrawals_user_created", "withdrawals", ["user_id", "created_at"])
    op.create_table(
        "recharges",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("recharge_no", sa.String(32), nullable=False, unique=True),
        sa.Column("user_id", sa.BigInteger, nullable=False, index=True),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("channel_txn_id", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("paid_at", UTCDateTime, nullable=True),
        sa.CheckConstraint("amount_fen > 0", name="ck_recharges_amount_positive"),
    )
    if op.get_bind().dialect.name == "postgresql":
        # Ledgers are append-only: the database itself refuses to change or remove a posting or entry.
        op.execute("CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                   "RAISE EXCEPTION 'ledger rows are append-only'; END $$")
        for table in LEDGER_TABLES:
            op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                       "FOR EACH ROW EXECUTE FUNCTION ledger_append_only()")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in LEDGER_TABLES:
            op.execute(f"DROP TRIGGER {table}_append_only ON {table}")
        op.execute("DROP FUNCTION ledger_append_only()")
    for table in ("recharges", "withdrawals", "coupons", "coupon_templates", "order_credits", "points_holds",
                  "ledger_entries", "ledger_postings", "ledger_accounts", "members"):
        op.drop_table(table)
