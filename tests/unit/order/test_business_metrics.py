"""The order service's business counters move once per committed fact: not per replay, not on failure."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import timedelta

import pytest
from mall.order.v1 import order_pb2
from prometheus_client import REGISTRY

from services.common.db import utcnow
from services.common.errors import DomainError, InvalidInput
from services.order import service
from services.order.__main__ import payment_watch
from services.order.grpc_api import OrderServicer
from tests.fakes import FakeOrderUnitOfWork
from tests.fixtures.metrics import CounterDeltas
from tests.unit.order.conftest import NOW, Shop
from tests.unit.order.test_cart_checkout_payment import BUY_TWO, FakeWechatPay, notice, submit  # 2 x 1999 fen


def test_an_order_counts_once_however_often_its_submit_is_replayed(shop: Shop) -> None:
    deltas = CounterDeltas()
    first = submit(shop, BUY_TWO, key="k1")
    for _ in range(3):
        assert submit(shop, BUY_TWO, key="k1").id == first.id
    submit(shop, BUY_TWO, key="k2")

    assert deltas() == {"mall_orders_created_total": 2}


def test_a_submit_that_fails_counts_no_order(shop: Shop) -> None:
    shop.members.fail_points, shop.members.points = True, 100  # after the stock reservation: the whole submit is undone
    deltas = CounterDeltas()
    with pytest.raises(DomainError):
        submit(shop, replace(BUY_TWO, points=100))

    assert deltas() == {}


def test_a_balance_payment_counts_one_paid_payment_and_its_amount_once(shop: Shop) -> None:
    shop.members.balance_fen = 10_000
    order = submit(shop, BUY_TWO)
    deltas = CounterDeltas()
    service.pay_order(shop.uow, shop.members, shop.users, None, shop.settings, user_id=1, order_id=order.id or 0,
                      channel="balance", now=NOW)
    service.mark_paid(shop.uow, order_no=order.order_no, channel="balance", out_trade_no=order.order_no,
                      paid_fen=order.payable_fen, actor="user:1", now=NOW)  # a replay

    assert deltas() == {'mall_payments_total{channel="balance",result="paid"}': 1,
                        'mall_gmv_fen_total{channel="balance"}': 3998}


def test_a_wallet_that_declines_counts_a_refused_balance_payment_and_no_amount(shop: Shop) -> None:
    shop.members.balance_fen = 100
    order = submit(shop, BUY_TWO)
    deltas = CounterDeltas()
    with pytest.raises(DomainError):
        service.pay_order(shop.uow, shop.members, shop.users, None, shop.settings, user_id=1,
                          order_id=order.id or 0, channel="balance", now=NOW)

    assert deltas() == {'mall_payments_total{channel="balance",result="refused"}': 1}


def test_a_wechat_notify_replayed_five_times_counts_one_payment(shop: Shop) -> None:
    order = submit(shop, BUY_TWO)
    wechat = FakeWechatPay(notice(order))
    deltas = CounterDeltas()
    for _ in range(5):
        service.handle_wechat_notify(shop.uow, wechat, headers={}, body=b"{}", now=NOW)

    assert deltas() == {'mall_payments_total{channel="wechat",result="paid"}': 1,
                        'mall_gmv_fen_total{channel="wechat"}': 3998}


def test_a_notify_with_another_amount_counts_no_payment(shop: Shop) -> None:
    order = submit(shop, BUY_TWO)
    deltas = CounterDeltas()
    with pytest.raises(service.NotifyRejected):
        service.handle_wechat_notify(shop.uow, FakeWechatPay(notice(order, 1)), headers={}, body=b"{}", now=NOW)

    assert deltas() == {}


def test_each_notify_the_servicer_rejects_is_counted(shop: Shop) -> None:
    order = submit(shop, BUY_TWO, now=utcnow())  # the servicer pays it on the clock
    servicer = OrderServicer(lambda: shop.uow, shop.catalog, shop.stock, shop.members, shop.users, shop.settings,
                             FakeWechatPay(None))
    deltas = CounterDeltas()
    for _ in range(2):  # a bad signature, twice
        with pytest.raises(InvalidInput):
            servicer.HandleWechatPayNotify(order_pb2.WechatPayNotifyRequest(body=b"{}"), None)  # type: ignore[arg-type]
    servicer.wechat = FakeWechatPay(notice(order))
    servicer.HandleWechatPayNotify(order_pb2.WechatPayNotifyRequest(body=b"{}"), None)  # type: ignore[arg-type]

    assert deltas() == {'mall_payment_notify_rejected_total{channel="wechat"}': 2,
                        'mall_payments_total{channel="wechat",result="paid"}': 1,
                        'mall_gmv_fen_total{channel="wechat"}': 3998}


def test_the_payment_watch_job_shows_stuck_payments_in_the_gauges(shop: Shop) -> None:
    overdue, prepaid = submit(shop, BUY_TWO, key="a"), submit(shop, BUY_TWO, key="b")
    overdue.pay_deadline = prepaid.pay_deadline = utcnow() - timedelta(hours=1)
    prepaid.prepaid_at = NOW
    stop = threading.Event()

    def uow_once() -> FakeOrderUnitOfWork:
        stop.set()  # one round of the job
        return shop.uow
    payment_watch(uow_once, 0)(stop)

    assert {waiting: REGISTRY.get_sample_value("mall_orders_unpaid_overdue", {"waiting": waiting})
            for waiting in ("wallet", "wechat", "none")} == {"wallet": 0, "wechat": 1, "none": 1}
    assert REGISTRY.get_sample_value("mall_wallet_charges_awaiting_staff") == 0
