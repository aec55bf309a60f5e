"""A cancellation's refund staff closed that WeChat Pay pays after all while a second refund of the same money is still
open (PENDING or ABNORMAL) here: undecided until that second refund ends. Closed unpaid, it freed the money and the
first counts as the order's refund; paid, the money went out twice (on fakes, exact fen and events)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from mall.events.v1.order_events_pb2 import RefundPaidTwice

from services.common.events import timestamp
from services.order import refunds, service
from services.order.domain import Order, Refund, RefundStatus
from tests.fakes import FakeRefundPayments
from tests.fixtures.metrics import CounterDeltas
from tests.unit.order.conftest import NOW, Shop, paid_order
from tests.unit.order.test_refund_paid_after_close import counts, paid_twice, refunded

LATER = NOW + timedelta(days=1)
LAST = LATER + timedelta(hours=2)


def notify(shop: Shop, payments: FakeRefundPayments, refund_no: str, *, now: datetime = LATER,
           times: int = 3) -> None:
    """WeChat Pay's notify that `refund_no` was paid, heard `times` times."""
    payments.notice = replace(payments.asked[refund_no], status="SUCCESS")
    for _ in range(times):
        refunds.handle_refund_notify(shop.uow, payments, headers={"Wechatpay-Signature": "good"}, body=b"{}", now=now)


def held(shop: Shop, second: FakeRefundPayments) -> tuple[Order, Refund, Refund, FakeRefundPayments]:
    """2 x 1999 = 3998 fen paid through WeChat Pay, its cancellation approved (REFUNDING); the refund `first`, ABNORMAL
    at WeChat Pay, closed by staff; approved again, `second` started through `second`; then WeChat Pay pays `first`
    after all."""
    order = paid_order(shop, (101, 2))
    order.pay_channel = "wechat"
    service.cancel_order(shop.uow, user_id=1, order_id=order.id or 0, reason="不想要了", now=NOW)
    payments = FakeRefundPayments(status="ABNORMAL")
    refunds.review_cancellation(shop.uow, payments, shop.members, order_id=order.id or 0, approve=True, reason="",
                                actor="staff:9", now=NOW)
    refunds.close_refund(shop.uow, payments, refund_no=list(payments.asked)[0], reason="卡已注销", actor="staff:1",
                         now=NOW)
    refunds.review_cancellation(shop.uow, second, shop.members, order_id=order.id or 0, approve=True, reason="",
                                actor="staff:9", now=NOW)
    first, again = shop.uow.refunds.for_order(order.id or 0)
    notify(shop, payments, first.refund_no)
    return order, first, again, payments


def test_a_closed_refund_paid_while_an_abnormal_one_holds_its_money_counts_when_that_one_is_closed(
        shop: Shop) -> None:
    deltas = CounterDeltas()
    second = FakeRefundPayments(status="ABNORMAL")
    order, first, again, payments = held(shop, second)

    # undecided: the second still holds the 3998 fen, WeChat Pay may pay it or never
    assert (first.status, first.paid_after_close_at, first.paid_after_close_waiting_at, again.status) == (
        "CLOSED", LATER, LATER, "ABNORMAL")
    assert (counts(order), refunded(shop), paid_twice(shop), order.status) == ((3998, 2, 3998), [], [], "REFUNDING")
    assert order.history[-1].reason == (
        f"refund {first.refund_no} was closed here but WeChat Pay paid it: 3998 fen wait for open refund "
        f"{again.refund_no}: counted if it closes, refunded twice if it is paid")

    refunds.close_refund(shop.uow, second, refund_no=again.refund_no, reason="已线下处理", actor="staff:1", now=LAST)

    assert (again.status, first.paid_after_close_waiting_at) == ("CLOSED", None)
    assert (counts(order), refunded(shop), paid_twice(shop), order.status) == (
        (3998, 2, 3998), [(first.refund_no, 3998)], [], "REFUNDED")
    assert refunds.paid_after_close_note(first, counted=True) in [step.reason for step in order.history]
    assert deltas()["mall_refunds_paid_after_close_total"] == 1  # once, when WeChat Pay paid it

    notify(shop, payments, first.refund_no, now=LAST)  # replayed: nothing changes
    refunds.settle_refund(shop.uow, refund_no=again.refund_no, status=RefundStatus.CLOSED, actor="wechatpay", now=LAST)
    assert (counts(order), refunded(shop), paid_twice(shop), order.status) == (
        (3998, 2, 3998), [(first.refund_no, 3998)], [], "REFUNDED")


def test_a_closed_refund_paid_while_a_pending_one_holds_its_money_is_paid_twice_when_that_one_is_paid(
        shop: Shop) -> None:
    second = FakeRefundPayments()  # PROCESSING: PENDING here
    order, first, again, payments = held(shop, second)
    assert (again.status, first.paid_after_close_waiting_at, refunded(shop), paid_twice(shop)) == (
        "PENDING", LATER, [], [])

    notify(shop, second, again.refund_no, now=LAST)

    assert (again.status, first.paid_after_close_waiting_at, order.status) == ("SUCCESS", None, "REFUNDED")
    assert (counts(order), refunded(shop)) == ((3998, 2, 3998), [(again.refund_no, 3998)])
    assert paid_twice(shop) == [(order.order_no, RefundPaidTwice(
        order_no=order.order_no, user_id=order.user_id, refund_no=first.refund_no, amount_fen=3998, channel="wechat",
        paid_at=timestamp(LATER)))]
    assert refunds.paid_after_close_note(first) in [step.reason for step in order.history]

    notify(shop, payments, first.refund_no, now=LAST)  # replayed: nothing changes
    assert (counts(order), len(refunded(shop)), len(paid_twice(shop))) == ((3998, 2, 3998), 1, 1)
