"""The wallet's one lock order on PostgreSQL: any posting that moves a shopper's wallet takes all of its accounts (bonus,
available, pending) in that order first, whichever of them it moves, so it never holds one another transaction needs
while it waits for the bonus account."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import Engine, text

from services.member.db import SqlMemberUnitOfWork
from services.member.domain import PLATFORM, Account, transfer
from tests.fixtures.postgres import start_thread, wait_until_blocked
from tests.integration.member.test_withdrawal_give_back_races_on_database import ALICE, NOW

pytestmark = pytest.mark.integration


def seed(uow: Callable[[], SqlMemberUnitOfWork], account: str, amount: int) -> None:
    with uow() as tx:
        tx.ledger.post(transfer(f"seed-{account}", "recharge", "seed", amount=amount,
                                source=(PLATFORM, Account.CLEARING), target=(ALICE, account)), NOW)
        tx.commit()


def test_a_posting_that_moves_only_the_available_balance_waits_for_the_bonus_account_first(
        engine: Engine, uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    seed(uow, Account.AVAILABLE, 10_000)
    seed(uow, Account.BONUS, 500)
    results: dict[str, object] = {}

    def pay() -> object:  # as buying a plan does: available to the platform's sales, no bonus leg
        with uow() as tx:
            posted = tx.ledger.post(transfer("plan", "plan_subscription", "plan-1", amount=3_000,
                                             source=(ALICE, Account.AVAILABLE), target=(PLATFORM, Account.SALES)), NOW)
            tx.commit()
        return posted

    with engine.connect() as holding:  # a transaction holding the bonus account, as a wallet payment does first
        holding.execute(text("SELECT 1 FROM ledger_accounts WHERE user_id = :user AND account = 'bonus' FOR UPDATE"),
                        {"user": ALICE})
        paying = start_thread(results, "pay", pay)
        wait_until_blocked(engine, paying)
        waited = paying.is_alive()
        # What that transaction would take next: free, since the posting waits for the bonus before anything else.
        free = holding.execute(text("SELECT count(*) FROM (SELECT 1 FROM ledger_accounts WHERE user_id = :user "
                                    "AND account <> 'bonus' FOR UPDATE NOWAIT) AS wallet"), {"user": ALICE}).scalar_one()
        holding.rollback()
    paying.join(60)

    assert (waited, free, results) == (True, 2, {"pay": True})  # available and pending were free
    with uow() as tx:
        assert (tx.ledger.balance(ALICE, Account.AVAILABLE), tx.ledger.balance(ALICE, Account.BONUS)) == (7_000, 500)


def test_a_posting_after_the_transaction_that_locked_the_wallet_ended_locks_it_again(
        engine: Engine, uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    seed(uow, Account.AVAILABLE, 10_000)

    with uow() as tx:
        tx.ledger.lock_wallet(ALICE)
        tx.commit()  # the locks end with it
        tx.ledger.post(transfer("plan", "plan_subscription", "plan-1", amount=3_000,
                                source=(ALICE, Account.AVAILABLE), target=(PLATFORM, Account.SALES)), NOW)
        with engine.connect() as other:
            free = other.execute(text("SELECT count(*) FROM (SELECT 1 FROM ledger_accounts WHERE user_id = :user "
                                      "FOR UPDATE SKIP LOCKED) AS wallet"), {"user": ALICE}).scalar_one()

    assert free == 0  # bonus, available and pending all locked by the posting's transaction
