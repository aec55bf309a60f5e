"""Races on PostgreSQL, each made certain by holding the first transaction open until the second waits on it:
two recharge requests under one idempotency key make one recharge."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, func, select

from services.common.errors import DomainError
from services.common.wechatpay import wechat_not_bound
from services.member import service
from services.member.db import SqlMemberUnitOfWork, recharges
from services.member.domain import PLATFORM, Account, transfer
from tests.fakes import SimulatedPayment
from tests.fixtures.postgres import start_thread, wait_until_blocked
from tests.integration.member.pausing import PausingLedger
from tests.integration.member.test_balance_payment_void_on_database import first_then_second

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 8, 8, 0, tzinfo=UTC)
ALICE = 101


def count(engine: Engine, table: object) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()  # type: ignore[arg-type]


class CountingPayment(SimulatedPayment):
    """Simulated parameters, numbered by how often the channel was asked to prepare a payment."""

    def __init__(self) -> None:
        self.prepared: list[str] = []

    def prepare(self, *, channel: str, out_trade_no: str, amount_fen: int, user_id: int = 0,
                now: datetime | None = None, expires_at: datetime | None = None) -> dict[str, str]:
        self.prepared.append(out_trade_no)
        return {"out_trade_no": out_trade_no, "prepared": str(len(self.prepared))}


def test_two_recharge_requests_racing_with_one_key_make_one_recharge(
        engine: Engine, uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    payment = CountingPayment()

    def start(work: SqlMemberUnitOfWork) -> object:
        recharge, params = service.create_recharge(work, payment, user_id=ALICE, amount_fen=10_000, channel="alipay",
                                                   idempotency_key="double-tap", now=NOW)
        return recharge.recharge_no, params

    first, second = first_then_second(engine, uow, start, start)

    assert first == second == (payment.prepared[0], {"out_trade_no": payment.prepared[0], "prepared": "1"})
    assert (len(payment.prepared), count(engine, recharges)) == (1, 1)


def test_a_recharge_the_channel_refuses_is_not_kept(engine: Engine, uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    class Refusing(SimulatedPayment):
        def prepare(self, **_: object) -> dict[str, str]:  # type: ignore[override]
            raise wechat_not_bound()

    with pytest.raises(DomainError) as refused:
        service.create_recharge(uow(), Refusing(), user_id=ALICE, amount_fen=10_000, channel="wechat",
                                idempotency_key="tap-1", now=NOW)
    retried, _ = service.create_recharge(uow(), SimulatedPayment(), user_id=ALICE, amount_fen=10_000,
                                         channel="wechat", idempotency_key="tap-1", now=NOW)

    found, total = service.my_recharges(uow(), user_id=ALICE, status="", offset=0, limit=20)
    assert (refused.value.code, [r.recharge_no for r in found], total) == (
        "WECHAT_NOT_BOUND", [retried.recharge_no], 1)



def test_a_recharge_credited_with_its_bonus_while_the_shopper_pays_from_the_wallet_both_go_through(
        engine: Engine, uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    """The wallet's lock order is the bonus account first (paying, withdrawing, refunding): a recharge credited with a
    bonus follows it, or it and a wallet payment under way wait for each other (a deadlock, one of them refused)."""
    with uow() as tx:
        for account, amount in ((Account.AVAILABLE, 10_000), (Account.BONUS, 5_000)):
            tx.ledger.post(transfer(f"seed-{account}", "recharge", "seed", amount=amount,
                                    source=(PLATFORM, Account.CLEARING), target=(ALICE, account)), NOW)
        tx.commit()
    recharge, _ = service.create_recharge(uow(), SimulatedPayment(), user_id=ALICE, amount_fen=50_000,
                                          channel="wechat", idempotency_key="k", now=NOW)
    reached, go, results = threading.Event(), threading.Event(), {}

    credit = start_thread(results, "credit", lambda: service.credit_recharge(
        PausingLedger(engine, "post", reached, go), recharge_no=recharge.recharge_no, paid_fen=50_000,
        channel_txn_id="T1", channel="wechat", now=NOW).status)
    assert reached.wait(60)
    pay = start_thread(results, "pay", lambda: service.pay_with_balance(
        uow(), user_id=ALICE, order_no="O1", amount_fen=8_000, now=NOW))
    wait_until_blocked(engine, pay)
    go.set()
    credit.join(60)
    pay.join(60)

    assert results == {"credit": "PAID", "pay": 60_000}  # the payment took its 8,000 from the bonus, 10,000 by then
    with uow() as tx:
        assert (tx.ledger.balance(ALICE, Account.AVAILABLE), tx.ledger.balance(ALICE, Account.BONUS)) == (60_000, 2_000)
