"""Withdrawals forfeit the bonus of the recharges they draw on: each recharge's bonus, each withdrawal's forfeit
and deduction, and what each withdrawal draws from each recharge (services.member.domain.draw_principal).

Recharges paid before it get their bonus from the ledger's `recharge-bonus:<recharge_no>` posting; withdrawals
made before it drew on no recharge and forfeited nothing.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("recharges") as batch:
        batch.add_column(sa.Column("bonus_fen", sa.BigInteger, nullable=False, server_default="0"))
    op.execute("""
        UPDATE recharges SET bonus_fen = COALESCE((
            SELECT ledger_entries.amount FROM ledger_postings
            JOIN ledger_entries ON ledger_entries.posting_id = ledger_postings.id
            WHERE ledger_postings.key = 'recharge-bonus:' || recharges.recharge_no AND ledger_entries.amount > 0
        ), 0)
    """)
    with op.batch_alter_table("withdrawals") as batch:
        batch.add_column(sa.Column("bonus_forfeited_fen", sa.BigInteger, nullable=False, server_default="0"))
        batch.add_column(sa.Column("deducted_fen", sa.BigInteger, nullable=False, server_default="0"))
        batch.create_check_constraint(
            "ck_withdrawals_deducted_within",
            "deducted_fen >= 0 AND deducted_fen <= bonus_forfeited_fen AND deducted_fen < amount_fen")
    op.create_table(
        "withdrawal_draws",
        sa.Column("withdrawal_no", sa.String(32), primary_key=True),
        sa.Column("recharge_no", sa.String(32), primary_key=True),
        sa.Column("principal_fen", sa.BigInteger, nullable=False),
        sa.Column("bonus_fen", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_withdrawal_draws_recharge_no", "withdrawal_draws", ["recharge_no"])


def downgrade() -> None:
    op.drop_index("ix_withdrawal_draws_recharge_no", table_name="withdrawal_draws")
    op.drop_table("withdrawal_draws")
    with op.batch_alter_table("withdrawals") as batch:
        batch.drop_constraint("ck_withdrawals_deducted_within", type_="check")
        batch.drop_column("deducted_fen")
        batch.drop_column("bonus_forfeited_fen")
    with op.batch_alter_table("recharges") as batch:
        batch.drop_column("bonus_fen")
