"""Each order history step says which step it is (`kind`, a code of a documented closed set): one kind per action of
the state machine, and the steps of an order's life, placed to completed or cancelled, exactly."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from services.common.order_steps import STEP_KINDS, StepKind
from services.order import service
from services.order.domain import ACTION_KINDS, TRANSITIONS, Order, OrderStatus
from services.order.grpc_api import order_message
from tests.fakes import FakeRefundPayments
from tests.unit.order.conftest import NOW, Shop, paid_order
from tests.unit.order.test_cart_checkout_payment import BUY_TWO, submit
from tests.unit.order.test_payment_after_stock_hold import TOO_LATE, prepaid
from tests.unit.order.test_refunds import paid_order as paid_by_wechat
from tests.unit.order.test_refunds import review, settle
from tests.unit.order.test_state_machine_and_pricing import an_order

README = Path(__file__).resolve().parents[3] / "README.md"
K = StepKind


def kinds(order: Order) -> list[str]:
    return [step.kind for step in order.history]


def shopper_kinds(order: Order) -> list[str]:
    """The kinds the shopper's order view carries (the gateway reads them from this message)."""
    return [step.kind for step in order_message(order, staff=False, open_cases={}).history]


def test_every_action_of_the_state_machine_has_a_kind_and_every_kind_there_an_action() -> None:
    assert {action for _, action in TRANSITIONS} == set(ACTION_KINDS)


@pytest.mark.parametrize(("status", "action"), sorted(TRANSITIONS))
def test_each_transition_records_one_step_of_its_one_documented_kind(status: OrderStatus, action: str) -> None:
    order = an_order()
    order.status = status.value

    order.apply(action, actor="staff:1", now=NOW, shopper_reason="")

    assert kinds(order)[1:] == [ACTION_KINDS[action]]
    assert ACTION_KINDS[action] in STEP_KINDS


def test_every_kind_is_recorded_somewhere_and_documented_in_the_readme() -> None:
    section = README.read_text(encoding="utf-8").split("- **Order history step kinds**", 1)[1].split("\n- **", 1)[0]

    assert set(ACTION_KINDS.values()) | {K.PLACED, K.PARTLY_SHIPPED, K.REFUND_NOTE, K.PAYMENT_NOTE} == set(StepKind)
    assert list(STEP_KINDS) == list(StepKind)
    assert [kind.value for kind in StepKind if f"`{kind.value}`" not in section] == []


def test_an_order_placed_paid_shipped_and_received_has_those_kinds_for_shopper_and_staff(shop: Shop) -> None:
    order = submit(shop, BUY_TWO)
    service.mark_paid(shop.uow, order_no=order.order_no, channel="wechat", out_trade_no=order.order_no,
                      paid_fen=order.payable_fen, actor="wechatpay", now=NOW)
    service.ship_order(shop.uow, order_id=order.id or 0, carrier="顺丰", tracking_no="SF1", lines=None,
                       actor="staff:7", now=NOW)

    done = service.confirm_receipt(shop.uow, user_id=1, order_id=order.id or 0, now=NOW + timedelta(days=1))

    assert kinds(done) == shopper_kinds(done) == ["placed", "paid", "shipped", "received"]
    assert [step.kind for step in order_message(done, staff=True, open_cases={}).history] == kinds(done)


def test_an_order_shipped_in_two_parcels_and_confirmed_automatically_says_so(shop: Shop) -> None:
    order = paid_order(shop, (101, 1), (102, 1))
    first, second = (line.id or 0 for line in order.lines)
    for line_id, tracking_no in ((first, "SF1"), (second, "SF2")):
        service.ship_order(shop.uow, order_id=order.id or 0, carrier="顺丰", tracking_no=tracking_no,
                           lines={line_id: 1}, actor="staff:7", now=NOW)

    assert service.auto_confirm_orders(shop.uow, shop.settings, now=NOW + timedelta(days=10)) == 1

    assert kinds(order) == ["placed", "paid", "partly_shipped", "shipped", "auto_completed"]


def test_an_unpaid_order_the_shopper_cancels_is_cancelled_by_them(shop: Shop) -> None:
    order = submit(shop, BUY_TWO)

    service.cancel_order(shop.uow, user_id=1, order_id=order.id or 0, reason="拍错了", now=NOW)

    assert kinds(order) == shopper_kinds(order) == ["placed", "cancelled_by_shopper"]
    assert order.history[-1].reason == "拍错了"  # reason is kept as the shopper wrote it


def test_an_unpaid_order_past_its_deadline_is_cancelled_by_the_timeout(shop: Shop) -> None:
    order = submit(shop, BUY_TWO)

    assert service.expire_orders(shop.uow, now=NOW + timedelta(minutes=30)) == 1

    assert kinds(order) == ["placed", "cancelled_unpaid_timeout"]


def test_an_order_paid_too_late_is_cancelled_so_with_a_payment_note_for_staff(shop: Shop) -> None:
    order, wechat = prepaid(shop)

    service.handle_wechat_notify(shop.uow, wechat, headers={}, body=b"{}", now=TOO_LATE)

    assert kinds(order) == ["placed", "cancelled_paid_too_late", "payment_note"]
    assert shopper_kinds(order) == ["placed", "cancelled_paid_too_late"]


def test_a_paid_order_whose_cancellation_staff_approve_is_refunded_in_full(shop: Shop) -> None:
    payments = FakeRefundPayments()
    order = paid_by_wechat(shop)
    service.cancel_order(shop.uow, user_id=1, order_id=order.id or 0, reason="买错了", now=NOW)
    review(shop, payments, order, True, "同意")
    [refund] = shop.uow.refunds.refunds

    settle(shop, refund)

    assert kinds(order) == shopper_kinds(order) == [
        "placed", "paid", "cancel_requested", "cancel_approved", "refunded_in_full"]


def test_a_paid_order_whose_cancellation_staff_decline_goes_ahead(shop: Shop) -> None:
    order = paid_order(shop, (101, 2))
    service.cancel_order(shop.uow, user_id=1, order_id=order.id or 0, reason="买错了", now=NOW)

    review(shop, FakeRefundPayments(), order, False, "已打包")

    assert kinds(order) == ["placed", "paid", "cancel_requested", "cancel_rejected"]

