"""What an order's shopper sees of its history and what staff see: every status change for both, staff's notes and
their own words for staff only, and nothing recorded lost for staff."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from google.protobuf import text_format

from services.order import refunds, service
from services.order.domain import Order, Refund
from services.order.grpc_api import order_message
from tests.fakes import FakeRefundPayments
from tests.unit.order.conftest import NOW, Shop
from tests.unit.order.conftest import paid_order as paid_from_the_wallet
from tests.unit.order.test_cart_checkout_payment import BUY_TWO, FakeWechatPay, notice, submit
from tests.unit.order.test_refunds import close, paid_order, review, settle

STAFF_WORDS = ("同意取消,客户来电", "卡已注销,线下转账", "已打包,无法取消")


def shopper_sees(order: Order) -> list[tuple[str, str, str]]:
    return [(step.status, step.actor, step.reason) for step in order.shopper_history()]


def staff_see(order: Order) -> list[tuple[str, str, str, bool, str]]:
    return [(step.status, step.actor, step.reason, step.shopper_visible, step.shopper_reason) for step in order.history]


@pytest.fixture
def payments() -> FakeRefundPayments:
    return FakeRefundPayments()


def cancelled_and_stuck(shop: Shop, payments: FakeRefundPayments) -> tuple[Order, Refund]:
    """A paid order the shopper cancelled and staff approved, whose refund WeChat Pay reports ABNORMAL."""
    order = paid_order(shop)
    service.cancel_order(shop.uow, user_id=1, order_id=order.id or 0, reason="拍错了", now=NOW)
    review(shop, payments, order, True, STAFF_WORDS[0])
    [refund] = shop.uow.refunds.refunds
    payments.notice = replace(payments.asked[refund.refund_no], status="ABNORMAL")
    refunds.handle_refund_notify(shop.uow, payments, headers={"Wechatpay-Signature": "good"}, body=b"{}", now=NOW)
    return order, refund


def test_the_shopper_sees_each_status_change_of_a_refunded_cancellation_but_no_staff_note_or_staff_words(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order, stuck = cancelled_and_stuck(shop, payments)
    payments.status = "ABNORMAL"  # WeChat Pay, asked before the close
    close(shop, payments, stuck.refund_no, STAFF_WORDS[1])
    payments.status = "PROCESSING"
    review(shop, payments, order, True)  # a new refund, which WeChat Pay pays
    [_, again] = shop.uow.refunds.refunds
    settle(shop, again)

    assert shopper_sees(order) == [("PENDING_PAYMENT", "user:1", "placed"), ("PAID", "wechatpay", "wechat"),
                                   ("CANCEL_REQUESTED", "user:1", "拍错了"),
                                   ("REFUNDING", "staff", "cancellation approved"),
                                   ("REFUNDED", "wechatpay", "refunded in full")]
    seen = text_format.MessageToString(order_message(order, staff=False, open_cases={}), as_utf8=True)
    internal = (*STAFF_WORDS, stuck.refund_no, again.refund_no, "ABNORMAL", "staff:")
    assert [word for word in internal if word in seen] == []


def test_staff_see_every_step_as_recorded_with_its_actor_and_what_the_shopper_was_told(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order, stuck = cancelled_and_stuck(shop, payments)
    payments.status = "ABNORMAL"  # WeChat Pay, asked before the close
    close(shop, payments, stuck.refund_no, STAFF_WORDS[1])

    held = (f"refund {stuck.refund_no} ABNORMAL at WeChat Pay: 4498 fen held until it is completed there or closed "
            "by staff")
    closed = f"refund {stuck.refund_no} closed (4498 fen freed): {STAFF_WORDS[1]}"
    assert staff_see(order) == [
        ("PENDING_PAYMENT", "user:1", "placed", True, "placed"), ("PAID", "wechatpay", "wechat", True, "wechat"),
        ("CANCEL_REQUESTED", "user:1", "拍错了", True, "拍错了"),
        ("REFUNDING", "staff:9", STAFF_WORDS[0], True, "cancellation approved"),
        ("REFUNDING", "wechatpay", held, False, ""), ("REFUNDING", "staff:1", closed, False, "")]
    message = order_message(order, staff=True, open_cases={})
    assert [(step.actor, step.reason, step.shopper_visible, step.shopper_reason) for step in message.history] == [
        (actor, reason, visible, told) for _, actor, reason, visible, told in staff_see(order)]


def test_a_rejected_cancellation_tells_the_shopper_it_was_declined_not_why_staff_wrote(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order = paid_order(shop)
    service.cancel_order(shop.uow, user_id=1, order_id=order.id or 0, reason="不要了", now=NOW)

    review(shop, payments, order, False, STAFF_WORDS[2])

    assert shopper_sees(order)[-1] == ("PAID", "staff", "cancellation declined")
    assert staff_see(order)[-1] == ("PAID", "staff:9", STAFF_WORDS[2], True, "cancellation declined")


def test_a_wechat_payment_after_cancellation_credited_back_is_a_note_for_staff(shop: Shop) -> None:
    order = submit(shop, BUY_TWO)
    service.cancel_order(shop.uow, user_id=1, order_id=order.id or 0, reason="", now=NOW)

    service.handle_wechat_notify(shop.uow, FakeWechatPay(notice(order)), headers={}, body=b"{}", now=NOW)

    assert order.history[-1].reason.startswith(service.LATE_PAYMENT)
    assert (order.history[-1].shopper_visible, shopper_sees(order)) == (False, [
        ("PENDING_PAYMENT", "user:1", "placed"), ("CANCELLED", "user:1", "")])


def test_a_wallet_charge_credited_back_by_reconciliation_is_a_note_for_staff(shop: Shop) -> None:
    order = submit(shop, BUY_TWO)
    service.cancel_order(shop.uow, user_id=1, order_id=order.id or 0, reason="", now=NOW)

    service.refund_late_wallet_payment(shop.uow, shop.members, order_no=order.order_no, user_id=1,
                                       amount_fen=order.payable_fen, actor="reconciliation", now=NOW)

    assert order.history[-1].reason.startswith(service.WALLET_LATE_PAYMENT)
    assert (order.history[-1].shopper_visible, [status for status, _, _ in shopper_sees(order)]) == (
        False, ["PENDING_PAYMENT", "CANCELLED"])


def test_the_shopper_follows_the_parcels_of_a_partly_shipped_order_and_its_receipt(shop: Shop) -> None:
    order = paid_from_the_wallet(shop, (101, 2), (102, 3))
    first = order.lines[0].id or 0
    later = NOW + timedelta(hours=1)
    service.ship_order(shop.uow, order_id=order.id or 0, carrier="SF", tracking_no="A1", lines={first: 2},
                       actor="staff:7", now=later)
    service.ship_order(shop.uow, order_id=order.id or 0, carrier="SF", tracking_no="A2", lines=None,
                       actor="staff:7", now=later)
    service.confirm_receipt(shop.uow, user_id=1, order_id=order.id or 0, now=later)

    assert shopper_sees(order)[1:] == [("PAID", "user:1", "balance"), ("PAID", "staff", "partly shipped: SF A1"),
                                       ("SHIPPED", "staff", "SF A2"), ("COMPLETED", "user:1", "receipt confirmed")]
    assert len(order.shopper_history()) == len(order.history)


def test_an_expired_order_tells_the_shopper_the_deadline_passed(shop: Shop) -> None:
    order = submit(shop, BUY_TWO)

    service.expire_orders(shop.uow, now=order.pay_deadline)

    assert shopper_sees(order)[-1] == ("CANCELLED", "system:timeout", service.EXPIRED)


def test_a_step_recorded_without_saying_whether_the_shopper_sees_it_is_refused(shop: Shop) -> None:
    order = submit(shop, BUY_TWO)

    with pytest.raises(TypeError):
        order.record_step(actor="staff:1", now=NOW, reason="a note")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        order.apply("cancel", actor="staff:1", now=NOW, reason="words")  # type: ignore[call-arg]

    assert (order.status, len(order.history)) == ("PENDING_PAYMENT", 1)
