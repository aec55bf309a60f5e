"""A late WeChat Pay payment's refund (on fakes) runs through the refund engine: its notify, the fallback job, the
ABNORMAL gauge and staff's retry and close see it; late-payment-refunded comes once it is paid, never order-refunded,
and the order's refunded amounts never move. A wallet charge staff credit back reaches the money ledger too."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from prometheus_client import REGISTRY

from services.common.errors import Conflict, DomainError, ErrorKind, NotFound
from services.common.order_steps import StepKind
from services.common.wechatpay import Refund as ChannelRefund
from services.common.wechatpay import WechatPayApiError
from services.order import refunds, service, wallet_reviews
from services.order.domain import Order, Refund
from tests.fakes import FakeRefundPayments, LostAnswerRefunds
from tests.unit.order.conftest import NOW, Shop, late_money
from tests.unit.order.test_cart_checkout_payment import BUY_TWO, FakeWechatPay, notice, submit
from tests.unit.order.test_wallet_payment import PAYABLE, unpaid
from tests.unit.order.test_wallet_reviews import left_for_staff, resolve

GOOD = {"Wechatpay-Signature": "good"}
LATER = NOW + timedelta(minutes=10)


class WechatPay(FakeWechatPay):
    """The payment side (a notify for a cancelled order) and the refund side (`payments`) of one WeChat Pay."""

    def __init__(self, order: Order, payments: FakeRefundPayments) -> None:
        super().__init__(notice(order))
        self.payments = payments

    def refund(self, **asked: object) -> ChannelRefund:
        super().refund(**asked)  # type: ignore[arg-type]
        return self.payments.refund(**asked)  # type: ignore[arg-type]


@pytest.fixture
def payments() -> FakeRefundPayments:
    return FakeRefundPayments()


def paid_late(shop: Shop, payments: FakeRefundPayments, *, times: int = 1) -> tuple[Order, Refund]:
    """A cancelled order WeChat Pay then notifies `times` paid: the late payment's refund is asked for (PROCESSING)."""
    order = submit(shop, BUY_TWO)
    service.cancel_order(shop.uow, user_id=1, order_id=order.id or 0, reason="", now=NOW)
    wechat = WechatPay(order, payments)
    for _ in range(times):
        service.handle_wechat_notify(shop.uow, wechat, headers={}, body=b"{}", now=NOW)
    refund = shop.uow.refunds.get(f"LATE{order.order_no}")
    assert refund is not None
    return order, refund


def notify(shop: Shop, payments: FakeRefundPayments, refund: Refund, status: str, times: int = 1) -> None:
    payments.notice = replace(payments.asked[refund.refund_no], status=status)
    for _ in range(times):
        refunds.handle_refund_notify(shop.uow, payments, headers=GOOD, body=b"{}", now=LATER)


def refunded_events(shop: Shop) -> list[tuple[str, str, str, int, str, str]]:
    return [event for event in late_money(shop) if event[0] == "late-payment-refunded"]


def test_a_late_payment_notified_three_times_is_one_pending_refund_of_its_own_source_reserving_nothing(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order, refund = paid_late(shop, payments, times=3)

    assert (refund.refund_no, refund.source, refund.status, refund.amount_fen, refund.channel, refund.lines) == (
        f"LATE{order.order_no}", "late_payment", "PENDING", 3998, "wechat", [])
    assert (len(shop.uow.refunds.refunds), list(payments.asked)) == (1, [refund.refund_no])
    assert (payments.asked[refund.refund_no].out_trade_no, payments.asked[refund.refund_no].total_fen) == (
        order.order_no, 3998)
    assert (order.refunded_fen, refunded_events(shop)) == (0, [])


def test_a_late_refund_paid_by_its_replayed_notify_publishes_late_payment_refunded_once_and_never_order_refunded(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order, refund = paid_late(shop, payments)

    notify(shop, payments, refund, "SUCCESS", times=3)

    assert (refund.status, refund.settled_at, order.status, order.refunded_fen) == ("SUCCESS", LATER, "CANCELLED", 0)
    assert refunded_events(shop) == [
        ("late-payment-refunded", order.order_no, "wechat", 3998, f"LATE{order.order_no}", "")]
    refunded = shop.uow.published[-1].payload
    assert (refunded.user_id, refunded.out_trade_no, refunded.refunded_at.ToDatetime(tzinfo=LATER.tzinfo)) == (
        1, order.order_no, LATER)
    assert [event.event_type for event in shop.uow.published] == [
        "order-created", "order-cancelled", "late-payment-received", "late-payment-refunded"]


def test_a_late_refund_whose_notify_is_lost_is_paid_by_the_fallback_job_once(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order, refund = paid_late(shop, payments)
    payments.status = "SUCCESS"  # paid at WeChat Pay; its notify never came

    ended = [refunds.reconcile_refunds(lambda: shop.uow, payments, shop.members, now=LATER) for _ in range(2)]

    assert (ended, refund.status, order.refunded_fen) == ([1, 0], "SUCCESS", 0)
    assert refunded_events(shop) == [
        ("late-payment-refunded", order.order_no, "wechat", 3998, f"LATE{order.order_no}", "")]


def test_a_wallet_paid_order_paid_again_with_wechat_pay_keeps_its_payment_when_the_late_refund_is_paid(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order = submit(shop, BUY_TWO)
    shop.members.balance_fen = 10000
    service.pay_order(shop.uow, shop.members, shop.users, None, shop.settings, user_id=1, order_id=order.id or 0,
                      channel="balance", now=NOW)
    service.handle_wechat_notify(shop.uow, WechatPay(order, payments), headers={}, body=b"{}", now=NOW)
    refund = shop.uow.refunds.get(f"LATE{order.order_no}")
    assert refund is not None

    notify(shop, payments, refund, "SUCCESS")

    assert (order.status, order.refunded_fen, [line.refunded_fen for line in order.lines]) == ("PAID", 0, [0])
    assert [event.event_type for event in shop.uow.published] == [
        "order-created", "order-paid", "late-payment-received", "late-payment-refunded"]


def abnormal_gauge() -> float | None:
    return REGISTRY.get_sample_value("mall_refunds_abnormal")


def test_an_abnormal_late_refund_is_counted_for_the_alert_and_staff_retry_it_until_it_is_paid(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order, refund = paid_late(shop, payments)

    notify(shop, payments, refund, "ABNORMAL")
    refunds.watch_abnormal_refunds(shop.uow, now=LATER + timedelta(hours=1))
    counted = abnormal_gauge()
    payments.status = "SUCCESS"  # the merchant completed it at WeChat Pay
    refunds.retry_refund(shop.uow, payments, shop.members, refund_no=refund.refund_no, actor="staff:9", now=LATER)
    refunds.watch_abnormal_refunds(shop.uow, now=LATER + timedelta(hours=1))

    assert (counted, abnormal_gauge()) == (1, 0)
    assert refund.refund_no in order.history[-1].reason and "ABNORMAL" in order.history[-1].reason
    assert (refund.status, order.refunded_fen) == ("SUCCESS", 0)
    assert refunded_events(shop) == [
        ("late-payment-refunded", order.order_no, "wechat", 3998, f"LATE{order.order_no}", "")]


def test_staff_close_an_abnormal_late_refund_with_a_reason_and_nothing_is_published_or_given_back(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order, refund = paid_late(shop, payments)
    notify(shop, payments, refund, "ABNORMAL")
    payments.status = "ABNORMAL"  # what WeChat Pay still answers when asked before the close

    closed = refunds.close_refund(shop.uow, payments, refund_no=refund.refund_no, reason="卡已注销,线下转账",
                                  actor="staff:1", now=LATER)

    assert (refund.status, closed.refunded_fen, closed.history[-1].actor) == ("CLOSED", 0, "staff:1")
    assert closed.history[-1].reason == (f"refund {refund.refund_no} closed (a late payment: nothing reserved, the "
                                         "shopper not refunded): 卡已注销,线下转账")  # not "3998 fen freed"
    assert refunded_events(shop) == []
    assert "order-refunded" not in [event.event_type for event in shop.uow.published]


def test_a_late_refund_wechat_pay_closes_is_abnormal_for_staff_alerted_until_they_close_it(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order, refund = paid_late(shop, payments)

    notify(shop, payments, refund, "CLOSED", times=2)
    refunds.watch_abnormal_refunds(shop.uow, now=LATER + timedelta(hours=1))
    counted = abnormal_gauge()
    payments.status = "CLOSED"  # what WeChat Pay answers when asked again: a retry changes nothing
    refunds.retry_refund(shop.uow, payments, shop.members, refund_no=refund.refund_no, actor="staff:9", now=LATER)
    still = refund.status
    refunds.close_refund(shop.uow, payments, refund_no=refund.refund_no, reason="线下转账", actor="staff:1", now=LATER)
    refunds.watch_abnormal_refunds(shop.uow, now=LATER + timedelta(hours=1))

    assert (counted, still, refund.status, abnormal_gauge()) == (1, "ABNORMAL", "CLOSED", 0)
    assert [step.reason for step in order.history].count(refunds.late_refund_closed_note(refund)) == 1
    assert (order.refunded_fen, refunded_events(shop)) == (0, [])
    assert late_money(shop) == [
        ("late-payment-received", order.order_no, "wechat", 3998, f"LATE{order.order_no}", "cancelled")]


def test_a_late_payment_whose_step_an_earlier_release_recorded_is_received_once_before_its_refund(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order = submit(shop, BUY_TWO)
    service.cancel_order(shop.uow, user_id=1, order_id=order.id or 0, reason="", now=NOW)
    refund_no = f"LATE{order.order_no}"
    # Recorded before late-payment-received existed; its refund was never paid.
    order.record_step(kind=StepKind.PAYMENT_NOTE, actor="wechatpay", now=NOW,
                      reason=f"{service.LATE_PAYMENT} ({refund_no}, 3998 fen)",
                      shopper=False)
    wechat = WechatPay(order, payments)

    for _ in range(3):
        service.handle_wechat_notify(shop.uow, wechat, headers={}, body=b"{}", now=LATER)
    refund = shop.uow.refunds.get(refund_no)
    assert refund is not None
    notify(shop, payments, refund, "SUCCESS", times=2)

    assert late_money(shop) == [
        ("late-payment-received", order.order_no, "wechat", 3998, refund_no, "cancelled"),
        ("late-payment-refunded", order.order_no, "wechat", 3998, refund_no, "")]
    assert [step.reason.startswith(service.LATE_PAYMENT) for step in order.history].count(True) == 1


class Refusing(FakeRefundPayments):
    def refund(self, **asked: object) -> ChannelRefund:
        raise WechatPayApiError(403, "NOT_ENOUGH", "余额不足")


def test_a_late_refund_wechat_pay_refuses_is_abnormal_for_staff_not_closed(shop: Shop) -> None:
    order, refund = paid_late(shop, Refusing())

    refunds.watch_abnormal_refunds(shop.uow, now=LATER)

    assert (refund.status, order.history[-1].reason) == (
        "ABNORMAL", refunds.late_refund_refused_note(refund, "NOT_ENOUGH"))
    assert (abnormal_gauge(), refunded_events(shop)) == (1, [])


def test_a_late_refund_whose_first_answer_is_lost_stays_pending_and_fails_the_payment_notify_to_be_replayed(
        shop: Shop) -> None:
    channel = LostAnswerRefunds(lost_sends=1)
    order = submit(shop, BUY_TWO)
    service.cancel_order(shop.uow, user_id=1, order_id=order.id or 0, reason="", now=NOW)

    with pytest.raises(DomainError) as failed:
        service.handle_wechat_notify(shop.uow, WechatPay(order, channel), headers={}, body=b"{}", now=NOW)

    refund = shop.uow.refunds.get(f"LATE{order.order_no}")
    assert refund is not None
    assert (failed.value.code, failed.value.kind, refund.status, channel.sent) == (
        "REFUND_FAILED", ErrorKind.UNAVAILABLE, "PENDING", [refund.refund_no])
    assert "PENDING" in failed.value.message


def test_a_late_refund_staff_retry_whose_resend_answer_is_lost_is_pending_not_closable_and_paid_once(
        shop: Shop) -> None:
    order, refund = paid_late(shop, Refusing())  # ABNORMAL: WeChat Pay holds nothing under its number
    channel = LostAnswerRefunds(lost_sends=1, status="SUCCESS")

    with pytest.raises(DomainError) as sent:
        refunds.staff_retry_refund(lambda: shop.uow, channel, shop.members, refund_no=refund.refund_no,
                                   actor="staff:9", now=LATER)
    assert (sent.value.code, refund.status) == ("PAYMENT_CHANNEL_UNAVAILABLE", "PENDING")
    assert order.history[-1].reason == refunds.answer_lost_note(refund)
    with pytest.raises(Conflict) as in_flight:
        refunds.close_refund(shop.uow, channel, refund_no=refund.refund_no, reason="线下转账", actor="staff:1",
                             now=LATER)
    assert in_flight.value.details == {"status": "PENDING", "action": "close"}
    channel.process()  # WeChat Pay paid it after all
    for minutes in (10, 20):
        refunds.reconcile_refunds(lambda: shop.uow, channel, shop.members, now=LATER + timedelta(minutes=minutes))

    assert (refund.status, order.refunded_fen, channel.sent) == ("SUCCESS", 0, [refund.refund_no])
    assert refunded_events(shop) == [
        ("late-payment-refunded", order.order_no, "wechat", 3998, f"LATE{order.order_no}", "")]


def test_a_wallet_charge_staff_credit_back_reaches_the_money_ledger_once(shop: Shop) -> None:
    order = unpaid(shop)
    review = left_for_staff(shop, order)  # another user's wallet paid it

    resolve(shop, review, "credit_back")
    resolve(shop, review, "credit_back", reason="再点一次")

    refund_no = f"LATEW{order.order_no}"
    assert late_money(shop) == [
        ("late-payment-received", order.order_no, "balance", PAYABLE, refund_no, wallet_reviews.REVIEWED_CHARGE),
        ("late-payment-refunded", order.order_no, "balance", PAYABLE, refund_no, "")]
    assert {event.payload.user_id for event in shop.uow.published if event.event_type.startswith("late-")} == {2}


def test_a_late_refund_staff_closed_after_paying_it_back_another_way_that_wechat_pay_pays_is_booked_paid_twice_once(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order, refund = paid_late(shop, payments)
    notify(shop, payments, refund, "ABNORMAL")
    payments.status = "ABNORMAL"
    refunds.close_refund(shop.uow, payments, refund_no=refund.refund_no, reason="线下转账", actor="staff:1", now=LATER)

    notify(shop, payments, refund, "SUCCESS", times=2)  # completed at WeChat Pay after all: the money went back twice

    assert (refund.status, order.refunded_fen, order.history[-1].reason) == (
        "CLOSED", 0, refunds.paid_after_close_note(refund))
    assert refunded_events(shop) == [  # WeChat Pay's refund of the late money
        ("late-payment-refunded", order.order_no, "wechat", 3998, f"LATE{order.order_no}", "")]
    assert [(e.payload.order_no, e.payload.refund_no, e.payload.amount_fen, e.payload.channel)
            for e in shop.uow.published if e.event_type == "refund-paid-twice"] == [
        (order.order_no, f"LATE{order.order_no}", 3998, "wechat")]  # and staff's before it: finance recovers one


def test_staff_retry_only_a_refund_number_they_could_have_read_and_are_answered_the_order(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order, refund = paid_late(shop, payments)
    payments.status = "SUCCESS"

    with pytest.raises(NotFound):
        refunds.staff_retry_refund(lambda: shop.uow, payments, shop.members, refund_no="LATE' OR 1=1",
                                   actor="staff:9")
    answered = refunds.staff_retry_refund(lambda: shop.uow, payments, shop.members, refund_no=refund.refund_no,
                                          actor="staff:9", now=LATER)

    assert (answered.id, answered.status, refund.status, len(refunded_events(shop))) == (
        order.id, "CANCELLED", "SUCCESS", 1)
