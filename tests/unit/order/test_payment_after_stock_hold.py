"""A payment the order service learns of only when the order's stock may be on sale again (PAYABLE_WITHIN after it
was placed: a lost notify or wallet answer while a service was down, a WeChat Pay transaction that could not be
closed) cancels the order and is refunded, whichever way it arrives, instead of making the order PAID (on fakes)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from services.common.errors import DomainError
from services.common.wechatpay import Refund as ChannelRefund
from services.common.wechatpay import WechatPayError
from services.order import service
from services.order.domain import PAYABLE_WITHIN, Order
from tests.fixtures.metrics import CounterDeltas
from tests.unit.order.conftest import NOW, Shop, late_money
from tests.unit.order.test_cart_checkout_payment import BUY_TWO, FakeWechatPay, notice, submit
from tests.unit.order.test_wallet_payment import DOWN, PAYABLE, WALLET, pay, pay_unanswered, reconcile, unpaid

TOO_LATE = NOW + PAYABLE_WITHIN


def events(shop: Shop) -> list[str]:
    return [event.event_type for event in shop.uow.published]


def cancelled_and_refunded(order: Order) -> tuple[str, str, str]:
    return order.status, order.history[-2].reason, order.history[-1].reason.split(" (")[0]


def prepaid(shop: Shop) -> tuple[Order, FakeWechatPay]:
    order = submit(shop, BUY_TWO)
    wechat = FakeWechatPay(notice(order))
    pay(shop, order, "wechat", wechat)
    return order, wechat


def test_a_notify_just_before_the_limit_still_pays_the_order(shop: Shop) -> None:
    order, wechat = prepaid(shop)

    service.handle_wechat_notify(shop.uow, wechat, headers={}, body=b"{}", now=TOO_LATE - timedelta(seconds=1))

    assert (order.status, wechat.refunds, events(shop)) == ("PAID", [], ["order-created", "order-paid"])


def test_a_notify_learned_of_too_late_cancels_the_order_and_refunds_the_payment_once(shop: Shop) -> None:
    order, wechat = prepaid(shop)
    deltas = CounterDeltas()

    for _ in range(2):  # WeChat Pay notifies again
        service.handle_wechat_notify(shop.uow, wechat, headers={}, body=b"{}", now=TOO_LATE)

    assert cancelled_and_refunded(order) == ("CANCELLED", service.PAID_TOO_LATE, service.LATE_PAYMENT)
    assert [(r["out_refund_no"], r["refund_fen"]) for r in wechat.refunds] == [(f"LATE{order.order_no}", PAYABLE)] * 2
    assert events(shop) == ["order-created", "order-cancelled", "late-payment-received"]
    assert late_money(shop) == [
        ("late-payment-received", order.order_no, "wechat", PAYABLE, f"LATE{order.order_no}", "too_late")]
    assert shop.uow.published[1].payload.reason == service.PAID_TOO_LATE
    assert deltas() == {'mall_payments_after_stock_hold_total{channel="wechat"}': 1}


def test_the_payment_query_finding_a_payment_too_late_refunds_it(shop: Shop) -> None:
    order, wechat = prepaid(shop)

    paid = service.reconcile_payments(lambda: shop.uow, wechat, now=TOO_LATE)  # type: ignore[arg-type]

    assert (paid, cancelled_and_refunded(order)) == (0, ("CANCELLED", service.PAID_TOO_LATE, service.LATE_PAYMENT))
    assert [r["out_refund_no"] for r in wechat.refunds] == [f"LATE{order.order_no}"]


def test_the_timeout_closing_a_prepay_only_once_it_is_too_late_refunds_what_was_paid(shop: Shop) -> None:
    order, wechat = prepaid(shop)
    wechat.close_error = WechatPayError("WeChat Pay did not answer")
    assert service.expire_orders(shop.uow, wechat=wechat, now=order.pay_deadline) == 0
    wechat.close_error = None

    settled = service.expire_orders(shop.uow, wechat=wechat, now=TOO_LATE)

    assert (settled, cancelled_and_refunded(order)) == (1, ("CANCELLED", service.PAID_TOO_LATE, service.LATE_PAYMENT))
    assert [r["out_refund_no"] for r in wechat.refunds] == [f"LATE{order.order_no}"]
    assert events(shop) == ["order-created", "order-cancelled", "late-payment-received"]


def test_a_shopper_cancelling_an_order_found_paid_too_late_gets_it_cancelled_and_refunded(shop: Shop) -> None:
    order, wechat = prepaid(shop)

    answered = service.cancel_order(shop.uow, user_id=1, order_id=order.id or 0, reason="不要了", wechat=wechat,
                                    now=TOO_LATE)

    assert (answered.status, cancelled_and_refunded(order)) == (
        "CANCELLED", ("CANCELLED", service.PAID_TOO_LATE, service.LATE_PAYMENT))
    assert [r["out_refund_no"] for r in wechat.refunds] == [f"LATE{order.order_no}"]
    assert events(shop) == ["order-created", "order-cancelled", "late-payment-received"]


def test_a_wallet_charge_resolved_too_late_cancels_the_order_and_goes_back_to_the_wallet(shop: Shop) -> None:
    order = unpaid(shop)
    shop.members.pay_answer_lost = DOWN
    pay_unanswered(shop, order)
    shop.members.pay_answer_lost, shop.members.query_error = None, DOWN
    assert reconcile(shop, TOO_LATE - timedelta(seconds=1)) == 0  # the member service is still down
    shop.members.query_error = None
    deltas = CounterDeltas()

    assert [reconcile(shop, TOO_LATE) for _ in range(2)] == [1, 0]

    assert (order.status, order.wallet_attempt_at, shop.members.balance_fen) == ("CANCELLED", None, WALLET)
    assert shop.members.balance_refunds == {f"LATEW{order.order_no}": PAYABLE}
    assert (order.history[-2].reason, events(shop)) == (service.PAID_TOO_LATE, [
        "order-created", "order-cancelled", "late-payment-received", "late-payment-refunded"])
    assert late_money(shop) == [
        ("late-payment-received", order.order_no, "balance", PAYABLE, f"LATEW{order.order_no}", "too_late"),
        ("late-payment-refunded", order.order_no, "balance", PAYABLE, f"LATEW{order.order_no}", "")]
    assert deltas() == {'mall_payments_after_stock_hold_total{channel="balance"}': 1}


@pytest.mark.parametrize("minutes", [0, 60, 89])
def test_within_the_limit_a_late_wallet_answer_still_pays_the_order(shop: Shop, minutes: int) -> None:
    order = unpaid(shop)
    shop.members.pay_answer_lost = DOWN
    pay_unanswered(shop, order)
    shop.members.pay_answer_lost = None

    assert reconcile(shop, NOW + timedelta(minutes=minutes, seconds=30)) == 1

    assert (order.status, shop.members.balance_refunds, events(shop)) == (
        "PAID", {}, ["order-created", "order-paid"])


class RefundDownOnce(FakeWechatPay):
    """WeChat Pay does not answer the first refund call (the notify is answered 5xx and comes again)."""

    def refund(self, **kwargs: Any) -> ChannelRefund:
        if not self.refunds:
            self.refunds.append({})
            raise WechatPayError("WeChat Pay did not answer")
        return super().refund(**kwargs)


def test_a_late_payment_is_published_when_recorded_and_its_refund_not_while_wechat_pay_is_still_paying_it(
        shop: Shop) -> None:
    order, _ = prepaid(shop)
    wechat = RefundDownOnce(notice(order))

    with pytest.raises(DomainError):
        service.handle_wechat_notify(shop.uow, wechat, headers={}, body=b"{}", now=TOO_LATE)
    first = late_money(shop)
    for _ in range(2):  # WeChat Pay notifies again; the refund is taken (PROCESSING), then asked for once more
        service.handle_wechat_notify(shop.uow, wechat, headers={}, body=b"{}", now=TOO_LATE + timedelta(minutes=1))

    refund_no = f"LATE{order.order_no}"
    assert first == [("late-payment-received", order.order_no, "wechat", PAYABLE, refund_no, "too_late")]
    assert late_money(shop) == first  # late-payment-refunded waits for the refund to be paid (test_late_refunds)
    assert [asked.get("out_refund_no") for asked in wechat.refunds] == [None, refund_no, refund_no]
