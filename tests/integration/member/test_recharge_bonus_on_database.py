"""Withdrawals forfeiting recharge bonus on PostgreSQL: they draw on the newest recharges first, and a rejected
withdrawal's draws and forfeit stop counting."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from services.common.db import utcnow
from services.member import service
from services.member.db import SqlMemberUnitOfWork
from services.member.domain import PLATFORM, Account
from tests.fakes import SimulatedPayment, SimulatedPayout

pytestmark = pytest.mark.integration

ALICE = 7373


def test_withdrawals_draw_on_the_newest_recharges_and_a_rejected_one_stops_counting(
        uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    now = utcnow()
    for minutes, amount in ((0, 50_000), (1, 10_000)):  # 500 yuan earns 50 of bonus, 100 earns none
        made, _ = service.create_recharge(uow(), SimulatedPayment(), user_id=ALICE, amount_fen=amount,
                                          channel="wechat", idempotency_key=f"r{minutes}",
                                          now=now + timedelta(minutes=minutes))
        service.credit_recharge(uow(), recharge_no=made.recharge_no, paid_fen=amount, channel_txn_id=made.recharge_no,
                                now=now + timedelta(minutes=minutes))

    def withdraw(amount: int, key: str) -> tuple[int, int, int]:
        made = service.request_withdrawal(uow(), user_id=ALICE, amount_fen=amount, idempotency_key=key)
        return made.id or 0, made.bonus_forfeited_fen, made.payout_fen

    bonus_free = withdraw(10_000, "a")
    rejected_id, *rejected = withdraw(20_000, "b")
    service.decide_withdrawal(uow(), SimulatedPayout(), withdrawal_id=rejected_id, approve=False, note="",
                              decided_by=9)
    service.pay_with_balance(uow(), user_id=ALICE, order_no="O-bonus-db", amount_fen=1_000)  # 1,000 of the bonus
    everything_id, *everything = withdraw(50_000, "c")
    paid = service.decide_withdrawal(uow(), SimulatedPayout(), withdrawal_id=everything_id, approve=True, note="",
                                     decided_by=9)

    assert (bonus_free[1:], rejected) == ((0, 10_000), [2_000, 20_000])
    assert (everything, paid.status) == ([5_000, 49_000], "PAID")  # 4,000 from the bonus, 1,000 spent: kept
    with uow() as tx:
        assert [tx.ledger.balance(ALICE, account) for account in (Account.AVAILABLE, Account.PENDING,
                                                                  Account.BONUS)] == [0, 10_000, 0]
        assert tx.ledger.balance(PLATFORM, Account.PROMOTIONS) == 0
        assert tx.ledger.check()[1] == []
