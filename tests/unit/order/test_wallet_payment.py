"""Paying from the wallet when the member service's answer is lost, and orders with nothing to pay (on fakes).

Every wallet payment is recorded on the order before the wallet is charged; the reconciliation job asks
the member service about attempts left unresolved and pays, credits back or forgets each one, and the
payment timeout leaves an order alone while its wallet charge is unknown.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from services.common.config import ConfigError, ServiceSettings
from services.common.errors import Conflict, DomainError, ErrorKind
from services.order import refunds, service
from services.order.config import OrderServiceSettings
from services.order.domain import Order
from services.order.service import PaymentStart
from tests.unit.order.conftest import NOW, Shop, late_money
from tests.unit.order.test_cart_checkout_payment import BUY_TWO, FakeWechatPay, notice, submit

DOWN = DomainError("MEMBER_UNAVAILABLE", "the member service did not answer", kind=ErrorKind.UNAVAILABLE)
SETTLED = timedelta(seconds=30)  # ORDER_WALLET_SETTLE_SECONDS' default
WALLET = 10_000
PAYABLE = 3998  # BUY_TWO: 2 x 1999 fen


def unpaid(shop: Shop, key: str = "k1") -> Order:
    shop.members.balance_fen = WALLET
    return submit(shop, BUY_TWO, key=key)


def pay(shop: Shop, order: Order, channel: str = "balance", wechat: FakeWechatPay | None = None,
        now: object = NOW) -> PaymentStart:
    return service.pay_order(shop.uow, shop.members, shop.users, wechat, shop.settings, user_id=1,
                             order_id=order.id or 0, channel=channel, now=now)  # type: ignore[arg-type]


def pay_unanswered(shop: Shop, order: Order, now: object = NOW) -> None:
    with pytest.raises(DomainError) as lost:
        pay(shop, order, now=now)
    assert lost.value.kind is ErrorKind.UNAVAILABLE  # the shopper is told to try again (503)


def reconcile(shop: Shop, at: object) -> int:
    return service.reconcile_wallet_payments(lambda: shop.uow, shop.members, now=at)  # type: ignore[arg-type]


def events(shop: Shop) -> list[str]:
    return [event.event_type for event in shop.uow.published]


def test_a_charge_whose_answer_was_lost_pays_the_order_once_at_reconciliation(shop: Shop) -> None:
    order = unpaid(shop)
    shop.members.pay_answer_lost = DOWN
    pay_unanswered(shop, order)
    assert (order.status, shop.members.balance_fen) == ("PENDING_PAYMENT", WALLET - PAYABLE)  # charged, not PAID
    shop.members.pay_answer_lost = None

    resolved = [reconcile(shop, NOW), reconcile(shop, NOW + SETTLED), reconcile(shop, NOW + SETTLED)]

    assert resolved == [0, 1, 0]  # too young at first: a charge may still be under way
    assert (order.status, order.pay_channel, order.out_trade_no, order.history[-1].actor) == (
        "PAID", "balance", order.order_no, "reconciliation")
    assert (shop.members.balance_fen, shop.members.balance_payments) == (WALLET - PAYABLE, [(order.order_no, PAYABLE)])
    assert events(shop) == ["order-created", "order-paid"]
    assert shop.uow.published[-1].payload.paid_fen == PAYABLE


def test_the_timeout_leaves_an_order_whose_wallet_charge_is_unknown_until_it_is_resolved(shop: Shop) -> None:
    order = unpaid(shop)
    shop.members.pay_answer_lost = DOWN
    pay_unanswered(shop, order)
    shop.members.pay_answer_lost, shop.members.query_error = None, DOWN
    deadline = order.pay_deadline

    assert service.expire_orders(shop.uow, now=deadline) == 0
    assert reconcile(shop, deadline) == 0  # the member service does not answer the question either
    assert service.expire_orders(shop.uow, now=deadline + SETTLED) == 0
    assert order.status == "PENDING_PAYMENT"

    shop.members.query_error = None
    assert reconcile(shop, deadline + SETTLED) == 1
    assert service.expire_orders(shop.uow, now=deadline + SETTLED) == 0
    assert (order.status, shop.members.balance_fen, shop.members.balance_refunds) == ("PAID", WALLET - PAYABLE, {})
    assert events(shop) == ["order-created", "order-paid"]


def test_an_attempt_that_charged_nothing_is_forgotten_and_the_order_then_expires(shop: Shop) -> None:
    order = unpaid(shop)
    shop.members.pay_error = DOWN
    pay_unanswered(shop, order)
    deadline = order.pay_deadline

    assert service.expire_orders(shop.uow, now=deadline) == 0  # unknown yet
    assert reconcile(shop, deadline) == 1
    assert service.expire_orders(shop.uow, now=deadline) == 1

    assert (order.status, shop.members.balance_fen, shop.members.balance_refunds) == ("CANCELLED", WALLET, {})
    assert events(shop) == ["order-created", "order-cancelled"]
    assert reconcile(shop, deadline + SETTLED) == 0 and shop.members.queried == [order.order_no]


def test_a_lost_charge_of_an_order_the_shopper_cancelled_meanwhile_is_credited_back_once(shop: Shop) -> None:
    order = unpaid(shop)
    shop.members.pay_answer_lost = DOWN
    pay_unanswered(shop, order)
    service.cancel_order(shop.uow, user_id=1, order_id=order.id or 0, reason="付款没反应", now=NOW)

    assert [reconcile(shop, NOW + SETTLED) for _ in range(2)] == [1, 0]

    refund_no = f"LATEW{order.order_no}"
    assert (order.status, order.paid_at, shop.members.balance_fen) == ("CANCELLED", None, WALLET)
    assert shop.members.balance_refunds == {refund_no: PAYABLE}
    assert [step.reason for step in order.history].count(
        f"paid from the wallet too late, refunded ({refund_no}, {PAYABLE} fen)") == 1
    assert events(shop) == ["order-created", "order-cancelled", "late-payment-received", "late-payment-refunded"]
    assert late_money(shop) == [
        ("late-payment-received", order.order_no, "balance", PAYABLE, refund_no, "cancelled"),
        ("late-payment-refunded", order.order_no, "balance", PAYABLE, refund_no, "")]


def test_a_late_charge_whose_credit_back_failed_is_credited_back_by_reconciliation(
        shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    order = unpaid(shop)
    charge = shop.members.pay_with_balance

    def cancelled_while_charging(order_no: str, amount_fen: int) -> None:
        service.cancel_order(shop.uow, user_id=1, order_id=order.id or 0, reason="", now=NOW)
        charge(order_no, amount_fen)
    monkeypatch.setattr(shop.members, "pay_with_balance", cancelled_while_charging)
    shop.members.refund_error = DOWN
    pay_unanswered(shop, order)  # charged, the order cancelled, and the credit back did not go through
    assert (shop.members.balance_fen, shop.members.balance_refunds) == (WALLET - PAYABLE, {})

    shop.members.refund_error = None
    assert [reconcile(shop, NOW + SETTLED) for _ in range(2)] == [1, 0]

    assert (order.status, shop.members.balance_fen) == ("CANCELLED", WALLET)
    assert shop.members.balance_refunds == {f"LATEW{order.order_no}": PAYABLE}
    assert events(shop) == ["order-created", "order-cancelled", "late-payment-received", "late-payment-refunded"]


def test_a_lost_charge_of_an_order_paid_with_wechat_pay_meanwhile_is_credited_back(shop: Shop) -> None:
    order = unpaid(shop)
    shop.members.pay_answer_lost = DOWN
    pay_unanswered(shop, order)
    service.mark_paid(shop.uow, order_no=order.order_no, channel="wechat", out_trade_no=order.order_no,
                      paid_fen=PAYABLE, actor="wechatpay", now=NOW)

    assert reconcile(shop, NOW + SETTLED) == 1

    assert (order.status, order.pay_channel, shop.members.balance_fen) == ("PAID", "wechat", WALLET)
    assert shop.members.balance_refunds == {f"LATEW{order.order_no}": PAYABLE}
    assert late_money(shop) == [
        ("late-payment-received", order.order_no, "balance", PAYABLE, f"LATEW{order.order_no}", "paid_otherwise"),
        ("late-payment-refunded", order.order_no, "balance", PAYABLE, f"LATEW{order.order_no}", "")]
    assert events(shop) == ["order-created", "order-paid", "late-payment-received", "late-payment-refunded"]


def test_the_timeout_passing_while_the_wallet_is_charged_leaves_the_order_to_be_paid(
        shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    order = unpaid(shop)
    charge = shop.members.pay_with_balance
    expired: list[int] = []

    def charged_at_the_deadline(order_no: str, amount_fen: int) -> None:
        expired.append(service.expire_orders(shop.uow, now=order.pay_deadline))
        charge(order_no, amount_fen)
    monkeypatch.setattr(shop.members, "pay_with_balance", charged_at_the_deadline)

    assert pay(shop, order).status == "PAID"
    assert (expired, shop.members.balance_fen, shop.members.balance_refunds) == ([0], WALLET - PAYABLE, {})
    assert events(shop) == ["order-created", "order-paid"]



def test_the_timeout_closing_a_prepay_leaves_an_order_whose_wallet_payment_began_meanwhile_to_reconciliation(
        shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    order = unpaid(shop)
    wechat = FakeWechatPay(notice=replace(notice(order), trade_state="CLOSED"))
    pay(shop, order, "wechat", wechat)  # prepaid, never paid at WeChat Pay
    deadline = order.pay_deadline
    close = wechat.close

    def closed_while_the_wallet_pays(out_trade_no: str) -> None:
        # The timeout picked the order (no wallet attempt yet) and closes its prepay outside the row lock;
        # meanwhile the shopper's wallet payment, begun a second before the deadline, loses its answer.
        close(out_trade_no)
        shop.members.pay_answer_lost = DOWN
        pay_unanswered(shop, order, now=deadline - timedelta(seconds=1))
        shop.members.pay_answer_lost = None
    monkeypatch.setattr(wechat, "close", closed_while_the_wallet_pays)

    service.expire_orders(shop.uow, wechat=wechat, now=deadline)
    assert order.status == "PENDING_PAYMENT"  # the timeout waits for the wallet payment, as for any other order

    assert reconcile(shop, deadline + SETTLED) == 1
    assert (order.status, order.pay_channel, shop.members.balance_fen, shop.members.balance_refunds) == (
        "PAID", "balance", WALLET - PAYABLE, {})

def test_a_wallet_that_declines_or_pays_at_once_leaves_nothing_to_reconcile(shop: Shop) -> None:
    declined = unpaid(shop, "a")
    shop.members.balance_fen = 100
    with pytest.raises(DomainError) as refused:
        pay(shop, declined)
    shop.members.balance_fen = WALLET
    paid = submit(shop, BUY_TWO, key="b")
    pay(shop, paid)

    assert (refused.value.code, reconcile(shop, NOW + SETTLED), shop.members.queried) == (
        "BALANCE_INSUFFICIENT", 0, [])
    assert service.expire_orders(shop.uow, now=declined.pay_deadline) == 1  # on time
    assert (declined.status, paid.status, shop.members.balance_fen) == ("CANCELLED", "PAID", WALLET - PAYABLE)


def test_an_answer_about_an_older_attempt_does_not_resolve_a_newer_one(
        shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    order = unpaid(shop)
    shop.members.pay_error = DOWN
    pay_unanswered(shop, order)  # nothing charged
    later = NOW + SETTLED
    answer = shop.members.void_balance_payment

    def newer_attempt_meanwhile(order_no: str) -> object:
        found = answer(order_no)  # "never charged", on its way back while the shopper taps pay again
        pay_unanswered(shop, order, now=later)  # its answer is lost too
        return found
    monkeypatch.setattr(shop.members, "void_balance_payment", newer_attempt_meanwhile)
    assert reconcile(shop, later) == 0
    monkeypatch.undo()

    assert service.expire_orders(shop.uow, now=order.pay_deadline) == 0  # the newer attempt is still unknown
    assert reconcile(shop, later + SETTLED) == 1
    assert service.expire_orders(shop.uow, now=order.pay_deadline) == 1
    assert (order.status, shop.members.balance_fen) == ("CANCELLED", WALLET)


def test_a_wallet_payment_after_reconciliation_found_none_is_refused_and_leaves_no_attempt(shop: Shop) -> None:
    order = unpaid(shop)
    shop.members.pay_error = DOWN
    pay_unanswered(shop, order)  # nothing charged
    shop.members.pay_error = None
    assert reconcile(shop, NOW + SETTLED) == 1  # the order's wallet payment is void from now on

    with pytest.raises(DomainError) as refused:
        pay(shop, order, now=NOW + SETTLED)

    assert (refused.value.code, order.status, order.wallet_attempt_at, shop.members.balance_fen) == (
        "BALANCE_PAYMENT_VOID", "PENDING_PAYMENT", None, WALLET)
    assert service.expire_orders(shop.uow, now=order.pay_deadline) == 1


def test_the_wallet_settle_time_must_outlast_the_deadline_of_the_wallet_call(tmp_path: Path) -> None:
    # Shorter, an attempt whose charge is still under way would be taken for one that charged nothing.
    key = tmp_path / "jwt-public.pem"
    key.write_bytes(b"public")
    base = ServiceSettings.from_env("order", {"JWT_PUBLIC_KEY_FILE": str(key), "MINIMALL_ENV": "test"})

    assert OrderServiceSettings.from_env(base, {}).wallet_settle_seconds == SETTLED.seconds
    with pytest.raises(ConfigError, match="ORDER_WALLET_SETTLE_SECONDS"):
        OrderServiceSettings.from_env(base, {"ORDER_WALLET_SETTLE_SECONDS": "5", "ORDER_GRPC_TIMEOUT_MS": "5000"})


# -- nothing to pay --------------------------------------------------------------------------------

@pytest.mark.parametrize("channel", ["balance", "wechat"])
def test_an_order_with_nothing_to_pay_is_paid_without_calling_a_channel(shop: Shop, channel: str) -> None:
    shop.members.coupon_fen, shop.members.points = 3000, 99_800  # the coupon and 998 fen of points cover it all
    order = submit(shop, replace(BUY_TWO, coupon_id=5, points=99_800))
    wechat = FakeWechatPay()
    assert (order.payable_fen, order.coupon_discount_fen, order.points_discount_fen, order.freight_fen) == (
        0, 3000, 998, 0)

    started = pay(shop, order, channel, wechat)

    assert (started.channel, started.out_trade_no, started.status, started.wx_request_payment) == (
        "none", order.order_no, "PAID", {})
    assert (order.status, order.pay_channel, order.out_trade_no, order.paid_at) == (
        "PAID", "none", order.order_no, NOW)
    assert (shop.members.balance_payments, shop.members.queried, wechat.prepaid) == ([], [], [])
    assert events(shop) == ["order-created", "order-paid"]
    paid = shop.uow.published[-1].payload
    assert (paid.paid_fen, paid.channel, paid.coupon_id, paid.points_used, paid.amounts.payable_fen) == (
        0, "none", 5, 99_800, 0)
    with pytest.raises(Conflict) as again:
        pay(shop, order, channel, wechat)
    assert again.value.details["status"] == "PAID" and events(shop) == ["order-created", "order-paid"]


def test_an_order_with_nothing_to_pay_still_takes_only_known_channels_and_its_deadline(shop: Shop) -> None:
    shop.members.coupon_fen = 5000
    order = submit(shop, replace(BUY_TWO, coupon_id=5))
    with pytest.raises(DomainError) as unknown:
        pay(shop, order, "alipay")
    with pytest.raises(Conflict) as late:
        pay(shop, order, "balance", now=order.pay_deadline)
    assert (unknown.value.code, late.value.code, order.status) == (
        "CHANNEL_INVALID", "ORDER_PAYMENT_EXPIRED", "PENDING_PAYMENT")


def test_an_approved_cancellation_of_an_order_with_nothing_to_pay_ends_refunded_by_a_0_fen_refund(
        shop: Shop) -> None:
    shop.members.coupon_fen = 5000
    order = submit(shop, replace(BUY_TWO, coupon_id=5))
    pay(shop, order)
    service.cancel_order(shop.uow, user_id=1, order_id=order.id or 0, reason="不要了", now=NOW)

    reviewed = refunds.review_cancellation(shop.uow, None, shop.members, order_id=order.id or 0, approve=True,
                                           reason="同意", actor="staff:9", now=NOW)

    [refund] = shop.uow.refunds.refunds
    assert (reviewed.status, reviewed.refunded_fen, refund.status, refund.amount_fen, refund.channel) == (
        "REFUNDED", 0, "SUCCESS", 0, "none")
    assert [(step.status, step.reason) for step in reviewed.history][-3:] == [
        ("CANCEL_REQUESTED", "不要了"), ("REFUNDING", "同意"),
        ("REFUNDED", f"refund {refund.refund_no}: nothing to refund (0 fen paid for these units)")]
    assert events(shop) == ["order-created", "order-paid", "order-cancelled"]
    assert shop.uow.published[-1].payload.was_paid  # the coupon comes back, as for any approved cancellation

