"""Reconciliation rounds within their budget, on PostgreSQL: a round with more prepaid orders due than its budget
covers stops, the next goes on after the last order asked (those still unpaid stay due), whichever replica runs it
(the place is kept in job_rounds), and every order is asked about and paid once. Time is a fake clock each WeChat Pay
query moves."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from mall.order.v1 import order_pb2

from services.common.uow import RoundBudget
from services.common.wechatpay import PaymentNotice, WechatPay
from services.order import service
from services.order.db import SqlOrderUnitOfWork
from tests.fixtures.simulator import RunningSimulator
from tests.integration.order.conftest import OrderServer
from tests.integration.order.test_order_grpc import ALICE, submit
from tests.unit.common.test_liveness import FakeClock

pytestmark = pytest.mark.integration


class SlowWechatPay:
    """WeChat Pay's payment query taking 10 s of `clock` each, every query noted."""

    def __init__(self, wechat: WechatPay, clock: FakeClock) -> None:
        self.wechat, self.clock = wechat, clock
        self.asked: list[str] = []

    def query_by_out_trade_no(self, out_trade_no: str) -> PaymentNotice:
        self.asked.append(out_trade_no)
        self.clock.advance(10)
        return self.wechat.query_by_out_trade_no(out_trade_no)


def six_prepaid_orders(server: OrderServer, simulator: RunningSimulator, prefix: str) -> tuple[list[int], list[str]]:
    """Six orders Alice opened WeChat Pay for: the first four left unpaid at WeChat Pay (due every round), the last two
    paid (their notify lost); their ids and out_trade_nos."""
    orders, trades = [], []
    for number in range(6):
        order = submit(server, f"{prefix}-{number}", order_pb2.CheckoutRequest(sku_id=102, quantity=1, address_id=7))
        orders.append(order.id)
        trades.append(server.stub.PayOrder(order_pb2.PayOrderRequest(id=order.id, channel="wechat"),
                                           metadata=server.as_user(ALICE)).out_trade_no)
    for trade in trades[4:]:
        simulator.client.wechatpay_pay(trade, notify=False)
    return orders, trades


def test_a_round_past_its_budget_stops_and_the_next_goes_on_after_the_last_order_asked(
        server: OrderServer, simulator: RunningSimulator, pg_uow: Callable[[], SqlOrderUnitOfWork]) -> None:
    orders, trades = six_prepaid_orders(server, simulator, "budgeted")
    clock = FakeClock()
    wechat, budget = SlowWechatPay(WechatPay(simulator.wechatpay_settings()), clock), RoundBudget(15, 0, clock=clock)
    later = datetime.now(UTC) + timedelta(minutes=2)

    rounds = []
    for _ in range(4):
        budget.start()  # as the job's timer does (runtime.every)
        asked = len(wechat.asked)
        paid = service.reconcile_payments(pg_uow, wechat, now=later, batch=2, budget=budget)  # type: ignore[arg-type]
        rounds.append((paid, wechat.asked[asked:]))

    # 10 s a query within 15 s: two orders a round; the fourth round starts over with the orders still unpaid
    assert rounds == [(0, trades[0:2]), (0, trades[2:4]), (2, trades[4:6]), (0, trades[0:2])]
    statuses = [server.stub.GetOrder(order_pb2.GetOrderRequest(id=order), metadata=server.as_user(ALICE)).status
                for order in orders]
    assert (statuses, server.events("order-paid")) == (["PENDING_PAYMENT"] * 4 + ["PAID"] * 2, 2)


def test_a_replicas_round_goes_on_after_where_the_other_replicas_round_stopped(
        server: OrderServer, simulator: RunningSimulator, pg_uow: Callable[[], SqlOrderUnitOfWork]) -> None:
    _, trades = six_prepaid_orders(server, simulator, "two-replicas")
    clock = FakeClock()
    wechat = SlowWechatPay(WechatPay(simulator.wechatpay_settings()), clock)
    replicas = [RoundBudget(15, 0, clock=clock), RoundBudget(15, 0, clock=clock)]  # each replica's job's own budget
    later = datetime.now(UTC) + timedelta(minutes=2)

    rounds = []
    for budget in replicas * 2:  # the replicas' timers take turns
        budget.start()
        asked = len(wechat.asked)
        paid = service.reconcile_payments(pg_uow, wechat, now=later, batch=2, budget=budget)  # type: ignore[arg-type]
        rounds.append((paid, wechat.asked[asked:]))

    # each round goes on after the last order the round before it asked, whichever replica's: none asks again about
    # orders the other has just asked about, and the walk ends in three rounds
    assert rounds == [(0, trades[0:2]), (0, trades[2:4]), (2, trades[4:6]), (0, trades[0:2])]


def test_where_a_rounds_sweeps_stopped_comes_back_keyed_as_the_sweeps_keyed_it(
        uow: Callable[[], SqlOrderUnitOfWork]) -> None:
    noon = datetime(2026, 12, 1, 12, tzinfo=UTC)
    kept = []
    for places in ({"refund": (12, "R12"), "closed refund": (3, "R3")}, {"closed refund": (3, "R3")}, {}):
        with uow() as tx:
            assert tx.start_round("refund-reconciliation", noon, timedelta(0))
            tx.keep_round_places("refund-reconciliation", places)
            tx.commit()
        with uow() as tx:
            kept.append(tx.round_places("refund-reconciliation"))

    assert kept == [{"refund": (12, "R12"), "closed refund": (3, "R3")}, {"closed refund": (3, "R3")}, {}]
