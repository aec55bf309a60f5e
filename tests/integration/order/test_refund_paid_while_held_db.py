"""A closed cancellation refund WeChat Pay pays after all while a second refund of the same money is still open here,
on PostgreSQL: nothing is decided until that second refund ends. Closed unpaid (its first answer lost, refused when
sent again), it frees the money and the first counts as the order's refund; paid, the money went out twice.
(From a reviewer's scratch test.)"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from services.common.wechatpay import WechatPayUnavailable
from services.order import db, refunds, service
from services.order.domain import OrderLine
from tests.fakes import FakeMembers, FakeRefundPayments
from tests.integration.order.test_order_grpc import ALICE
from tests.integration.order.test_refund_paid_after_close_db import Uow, amounts, paid_twice_events, refunded_events
from tests.integration.order.test_refunds import RefusingResend, paid

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 7, 3, tzinfo=UTC)


def notify(uow: Uow, payments: FakeRefundPayments, refund_no: str, times: int = 2) -> None:
    """WeChat Pay's notify that `refund_no` was paid, sent `times` times."""
    payments.notice = replace(payments.asked[refund_no], status="SUCCESS")
    for _ in range(times):
        refunds.handle_refund_notify(uow(), payments, headers={"Wechatpay-Signature": "good"}, body=b"{}", now=NOW)


def closed_then_held(uow: Uow, order_no: str,
                     second: FakeRefundPayments) -> tuple[int, str, str, FakeRefundPayments]:
    """4 x 1000 fen paid and its cancellation approved (REFUNDING); its refund `first`, ABNORMAL at WeChat Pay, closed
    by staff; approved again, a second refund started through `second` (PENDING); then WeChat Pay pays `first` after
    all (notified twice)."""
    order_id = paid(uow, order_no, OrderLine(101, 10, "茶", "", 1000, 4))
    service.cancel_order(uow(), user_id=ALICE, order_id=order_id, reason="买错了", now=NOW)
    payments = FakeRefundPayments(status="ABNORMAL")
    refunds.review_cancellation(uow(), payments, FakeMembers(), order_id=order_id, approve=True, reason="同意",
                                actor="staff:9", now=NOW)
    [(first, _)] = listed(uow, order_id)
    refunds.close_refund(uow(), payments, refund_no=first, reason="卡已注销", actor="staff:1", now=NOW)
    refunds.review_cancellation(uow(), second, FakeMembers(), order_id=order_id, approve=True, reason="同意",
                                actor="staff:9", now=NOW)
    (_, closed), (again, pending) = listed(uow, order_id)
    assert (closed, pending) == ("CLOSED", "PENDING")
    notify(uow, payments, first)
    return order_id, first, again, payments


def listed(uow: Uow, order_id: int) -> list[tuple[str, str]]:
    """The order's refunds: (refund_no, status), oldest first."""
    with uow() as tx:
        return [(refund.refund_no, refund.status) for refund in tx.refunds.for_order(order_id)]


def waiting(uow: Uow, refund_no: str) -> bool:
    with uow() as tx:
        return tx.session.execute(select(db.refunds.c.paid_after_close_waiting_at)
                                  .where(db.refunds.c.refund_no == refund_no)).scalar_one() is not None


def test_money_paid_once_is_not_booked_paid_twice(uow: Uow) -> None:
    order_id, first, second, payments = closed_then_held(uow, "R-PTWICE", FakeRefundPayments(
        error=WechatPayUnavailable("no answer")))
    assert (amounts(uow, order_id), paid_twice_events(uow), refunded_events(uow), waiting(uow, first)) == (
        (4000, [(4, 4000)]), [], 0, True)  # the second still holds the 4000 fen: undecided
    # The second never reached WeChat Pay, which refuses it when sent again (the trade is refunded in full).
    later = NOW + timedelta(hours=2)
    refunds.reconcile_refunds(uow, RefusingResend(), FakeMembers(), now=later, stuck_seconds=3600)
    refunds.close_refund(uow(), RefusingResend(), refund_no=second, reason="never sent", actor="staff:1", now=later)

    order = service.get_order(uow(), user_id=None, order_id=order_id)
    # 4000 fen went out once, by `first`: it ends as the order's refund, not as money paid twice
    assert (amounts(uow, order_id), paid_twice_events(uow), refunded_events(uow), order.status,
            waiting(uow, first)) == ((4000, [(4, 4000)]), [], 1, "REFUNDED", False)
    notify(uow, payments, first)  # replayed once more: nothing changes
    assert (amounts(uow, order_id), paid_twice_events(uow), refunded_events(uow)) == ((4000, [(4, 4000)]), [], 1)


def test_the_holder_paid_too_books_the_first_paid_twice_once(uow: Uow) -> None:
    second_payments = FakeRefundPayments()
    order_id, first, second, payments = closed_then_held(uow, "R-PTWICE2", second_payments)
    assert (paid_twice_events(uow), refunded_events(uow), waiting(uow, first)) == ([], 0, True)

    notify(uow, second_payments, second, times=3)
    notify(uow, payments, first)  # replayed: nothing changes

    order = service.get_order(uow(), user_id=None, order_id=order_id)
    assert (amounts(uow, order_id), paid_twice_events(uow), refunded_events(uow), order.status,
            waiting(uow, first)) == ((4000, [(4, 4000)]), [(first, 4000)], 1, "REFUNDED", False)
