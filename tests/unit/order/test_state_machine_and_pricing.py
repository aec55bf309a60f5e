"""The order state machine table and the one pricing function (with its rounding rule)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.errors import Conflict, ErrorKind
from services.order.domain import (
    TRANSITIONS,
    FreightRule,
    OrderLine,
    OrderStatus,
    level_discount,
    new_order,
    price,
)
from tests.unit.order.conftest import HOME, NOW


def an_order():
    return new_order(user_id=1, order_no="N1", lines=[OrderLine(1, 10, "茶", "", 1000, 2)], address=HOME,
                     amounts=price(2000), now=NOW, pay_minutes=30)


def test_a_new_order_awaits_payment_until_its_deadline_with_the_placement_in_its_history() -> None:
    order = an_order()
    assert order.status == "PENDING_PAYMENT"
    assert order.pay_deadline == NOW + timedelta(minutes=30)
    assert [(step.status, step.actor, step.reason) for step in order.history] == [("PENDING_PAYMENT", "user:1", "placed")]


def test_every_transition_is_recorded_with_actor_time_and_reason() -> None:
    order = an_order()
    order.apply("pay", actor="wechatpay", now=NOW + timedelta(minutes=1), reason="wechat", shopper_reason="wechat")
    order.apply("ship", actor="staff:7", now=NOW + timedelta(hours=1), shopper_reason="")
    assert order.status == "SHIPPED"
    assert [(step.status, step.actor, step.at) for step in order.history[1:]] == [
        ("PAID", "wechatpay", NOW + timedelta(minutes=1)), ("SHIPPED", "staff:7", NOW + timedelta(hours=1))]


@pytest.mark.parametrize("status", [status for status in OrderStatus if (status, "pay") not in TRANSITIONS])
def test_an_action_the_table_lacks_is_a_409_naming_the_current_state(status: OrderStatus) -> None:
    order = an_order()
    order.status = status.value
    with pytest.raises(Conflict) as refused:
        order.apply("pay", actor="wechatpay", now=NOW, shopper_reason="")
    assert refused.value.kind is ErrorKind.CONFLICT
    assert refused.value.details == {"status": status.value, "action": "pay"}
    assert order.status == status.value and len(order.history) == 1


def test_every_state_appears_in_the_table() -> None:
    reachable = {target for target in TRANSITIONS.values()} | {OrderStatus.PENDING_PAYMENT}
    assert reachable == set(OrderStatus)


def test_level_discount_rounds_down_to_the_fen() -> None:
    assert level_discount(1999, 9_500) == 99  # 99.95 fen off -> 99
    assert level_discount(1999, 10_000) == 0
    assert level_discount(1000, 8_800) == 120
    assert level_discount(1999, 9_025) == 194  # 194.90.. fen off -> 194


def test_a_gold_member_with_plus_pays_exactly_90_25_percent() -> None:
    amounts = price(100_000, discount_bp=95 * 95)  # gold 95% x PLUS 95%: 9025, not 90% (9000)

    assert (amounts.level_discount_fen, amounts.payable_fen) == (9_750, 90_250)


def test_discounts_apply_level_then_coupon_then_points_each_capped_by_what_is_left() -> None:
    amounts = price(10000, discount_bp=9_000, coupon_fen=8500, points_fen=1000, freight=FreightRule(800, 0))
    assert (amounts.level_discount_fen, amounts.coupon_discount_fen, amounts.points_discount_fen) == (1000, 8500, 500)
    assert amounts.freight_fen == 800
    assert amounts.payable_fen == 800


def test_freight_is_waived_from_the_threshold_on_the_discounted_goods() -> None:
    rule = FreightRule(flat_fen=1000, free_from_fen=9900)
    assert price(9900, freight=rule).freight_fen == 0
    assert price(10000, discount_bp=9_800, freight=rule).freight_fen == 1000  # 9800 after the level discount


@given(items=st.integers(0, 10**10), bp=st.integers(1, 10_000), coupon=st.integers(0, 10**10),
       points=st.integers(0, 10**10), flat=st.integers(0, 10**5), free_from=st.integers(0, 10**6))
def test_payable_is_items_minus_discounts_plus_freight_and_never_negative(items: int, bp: int, coupon: int,
                                                                           points: int, flat: int,
                                                                           free_from: int) -> None:
    amounts = price(items, discount_bp=bp, coupon_fen=coupon, points_fen=points,
                    freight=FreightRule(flat, free_from))
    assert amounts.payable_fen == (amounts.items_total_fen - amounts.level_discount_fen - amounts.coupon_discount_fen
                                   - amounts.points_discount_fen + amounts.freight_fen)
    assert amounts.payable_fen >= amounts.freight_fen >= 0
    assert 0 <= amounts.level_discount_fen <= items and amounts.coupon_discount_fen <= coupon
    assert all(isinstance(value, int) for value in vars(amounts).values())
