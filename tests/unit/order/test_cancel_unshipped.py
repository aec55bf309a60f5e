"""Staff cancel the units of a partly shipped order that will never ship: refunded, restocked, the order SHIPPED."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from services.common.errors import Conflict, InvalidInput, NotFound
from services.common.wechatpay import WechatPayApiError
from services.order import aftersales, refunds, service
from services.order.domain import FreightRule, Order, RefundItem, line_refund_fen, paid_shares, points_shares
from services.order.service import CheckoutInput
from tests.fakes import FakeRefundPayments, LostAnswerRefunds
from tests.unit.order.conftest import NOW, Shop

LATER = NOW + timedelta(hours=1)
CANCELLED_AT = NOW + timedelta(days=3)


@pytest.fixture
def payments() -> FakeRefundPayments:
    return FakeRefundPayments()


def part_shipped(shop: Shop, *, ship: bool = True) -> Order:
    """2 x 1999 + 1 x 500 = 4498 in goods, 1001 off by coupon, 800 freight: 4297 paid with WeChat Pay; one unit
    of the first line shipped (the second unit and the second line never will)."""
    shop.settings = replace(shop.settings, freight=FreightRule(flat_fen=800))
    shop.members.coupon_fen = 1001
    first = service.add_cart_item(shop.uow, shop.catalog, user_id=1, sku_id=101, quantity=2, now=NOW)
    second = service.add_cart_item(shop.uow, shop.catalog, user_id=1, sku_id=102, quantity=1, now=NOW)
    order = service.submit_order(shop.uow, shop.members, shop.stock, shop.users, shop.settings, user_id=1,
                                 request=CheckoutInput(cart_item_ids=(first.item.id or 0, second.item.id or 0),
                                                       address_id=7, coupon_id=9),
                                 note="", idempotency_key="k", request_fingerprint=b"k", now=NOW)
    order = service.mark_paid(shop.uow, order_no=order.order_no, channel="wechat", out_trade_no=order.order_no,
                              paid_fen=order.payable_fen, actor="wechatpay", now=NOW)
    if ship:
        service.ship_order(shop.uow, order_id=order.id or 0, carrier="SF", tracking_no="SF1",
                           lines={order.lines[0].id or 0: 1}, actor="staff:7", now=LATER)
    return order


def cancel(shop: Shop, payments: FakeRefundPayments, order: Order, *, key: str = "key-1", reason: str = "停产",
           shopper_reason: str = "该颜色已停产") -> Order:
    return refunds.cancel_unshipped(shop.uow, payments, shop.members, order_id=order.id or 0, reason=reason,
                                    shopper_reason=shopper_reason, actor="staff:9", idempotency_key=key,
                                    request_fingerprint=f"{reason}|{shopper_reason}".encode(), now=CANCELLED_AT)


def published(shop: Shop, event_type: str) -> list[object]:
    return [event.payload for event in shop.uow.published if event.event_type == event_type]


def test_the_unshipped_units_are_refunded_their_paid_share_restocked_and_the_order_is_shipped(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order = part_shipped(shop)
    first, second = order.lines
    assert (order.payable_fen, order.freight_fen) == (4297, 800)  # goods paid 3497: shares 3108 and 389

    done = cancel(shop, payments, order)

    # 1 of 2 units of the first line: 3108 // 2 = 1554; the second line's only unit: its whole share, 389.
    [refund] = shop.uow.refunds.refunds
    assert (refund.amount_fen, refund.source, refund.status) == (1943, "cancel_unshipped", "PENDING")
    assert [(line.line_id, line.quantity, line.amount_fen) for line in refund.lines] == [(first.id, 1, 1554),
                                                                                       (second.id, 1, 389)]
    assert payments.asked[refund.refund_no].refund_fen == 1943  # freight kept: a parcel went out
    assert (done.status, done.shipped_at, done.refunded_fen) == ("SHIPPED", CANCELLED_AT, 1943)
    assert [(line.refunded_quantity, line.refunded_fen) for line in done.lines] == [(1, 1554), (1, 389)]
    assert [(kept.line.id, kept.quantity, kept.kept_fen) for kept in done.kept()] == [(first.id, 1, 1554)]
    [returned] = published(shop, "order-returned")
    assert (returned.case_no, [(line.sku_id, line.quantity) for line in returned.lines]) == (
        refund.refund_no, [(101, 1), (102, 1)])
    step = done.history[-1]
    assert (step.status, step.actor, step.shopper_visible) == ("SHIPPED", "staff:9", True)
    assert step.reason == f"unshipped units cancelled (line {first.id} x1, line {second.id} x1): 停产"
    assert done.shopper_history()[-1].reason == f"{refunds.UNSHIPPED_SHOPPER_WORDS}: 该颜色已停产"
    assert published(shop, "order-shipped") == []  # no parcel left: nothing was handed to a carrier


def test_the_refund_settling_publishes_order_refunded_once_and_the_order_stays_shipped(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order = part_shipped(shop)
    cancel(shop, payments, order)
    [refund] = shop.uow.refunds.refunds

    for _ in range(2):
        refunds.settle_refund(shop.uow, refund_no=refund.refund_no, status=refunds.RefundStatus.SUCCESS,
                              actor="wechatpay", now=CANCELLED_AT)

    [event] = published(shop, "order-refunded")
    assert (event.amount_fen, [(line.sku_id, line.quantity) for line in event.lines]) == (1943, [(101, 1), (102, 1)])
    assert (order.status, order.refunded_fen) == ("SHIPPED", 1943)


def test_a_later_refund_of_the_shipped_unit_returns_exactly_the_rest_of_the_goods_paid(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order = part_shipped(shop)
    cancel(shop, payments, order)
    first = order.lines[0]

    rest = line_refund_fen(order, first.id or 0, 1)
    refunds.start_refund(shop.uow, payments, shop.members, order_id=order.id or 0, items=[
        RefundItem(first.id or 0, 1, rest)], reason="质量问题", actor="staff:9", source="after_sale:1", now=CANCELLED_AT)

    assert (rest, order.refunded_fen) == (1554, 3497)  # every fen of goods paid, never the freight
    assert order.kept() == []


def test_a_retry_with_the_same_key_changes_nothing_and_another_body_under_it_is_refused(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order = part_shipped(shop)
    cancel(shop, payments, order)

    again = cancel(shop, payments, order)

    assert (again.status, again.refunded_fen, len(shop.uow.refunds.refunds), len(payments.asked)) == (
        "SHIPPED", 1943, 1, 1)
    assert len(published(shop, "order-returned")) == 1
    with pytest.raises(Conflict) as reused:
        cancel(shop, payments, order, reason="缺货")
    assert reused.value.code == "IDEMPOTENCY_KEY_REUSED"
    with pytest.raises(Conflict) as shipped:
        cancel(shop, payments, order, key="key-2")
    assert (shipped.value.code, shipped.value.details["status"]) == ("ORDER_STATE_CONFLICT", "SHIPPED")
    assert (order.refunded_fen, len(shop.uow.refunds.refunds)) == (1943, 1)


def test_a_paid_order_with_no_parcel_is_refused_for_the_cancellation_flow_and_nothing_changes(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order = part_shipped(shop, ship=False)

    with pytest.raises(Conflict) as refused:
        cancel(shop, payments, order)

    assert (refused.value.code, refused.value.details) == (
        "ORDER_STATE_CONFLICT", {"status": "PAID", "action": "cancel_unshipped", "shipments": 0})
    assert (order.status, order.refunded_fen, shop.uow.refunds.refunds) == ("PAID", 0, [])
    assert published(shop, "order-returned") == []


def test_a_reason_is_required_and_an_unknown_order_is_not_found(shop: Shop, payments: FakeRefundPayments) -> None:
    order = part_shipped(shop)
    with pytest.raises(InvalidInput) as no_reason:
        cancel(shop, payments, order, reason="  ")
    assert no_reason.value.code == "CANCEL_REASON_REQUIRED"
    with pytest.raises(NotFound):
        refunds.cancel_unshipped(shop.uow, payments, shop.members, order_id=999, reason="停产", shopper_reason="",
                                 actor="staff:9", idempotency_key="k", request_fingerprint=b"k", now=CANCELLED_AT)
    assert (order.status, order.refunded_fen) == ("PAID", 0)


def test_a_refused_refund_leaves_the_units_cancelled_and_a_new_key_refunds_them_without_restocking_again(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order = part_shipped(shop)
    payments.error = WechatPayApiError(400, "NOT_ENOUGH", "余额不足")

    with pytest.raises(Conflict) as refused:
        cancel(shop, payments, order)

    assert refused.value.code == "REFUND_REFUSED"
    assert (order.status, order.refunded_fen, [line.refunded_quantity for line in order.lines]) == ("SHIPPED", 0,
                                                                                                   [0, 0])
    assert "1943 fen owed unless paid another way" in order.history[-1].reason and not order.history[-1].shopper_visible
    payments.error = None

    cancel(shop, payments, order, key="key-2")

    closed, again = shop.uow.refunds.refunds
    assert (closed.status, again.status, again.amount_fen, again.source) == ("CLOSED", "PENDING", 1943,
                                                                               "cancel_unshipped")
    assert (order.refunded_fen, [line.refunded_quantity for line in order.lines]) == (1943, [1, 1])
    assert len(published(shop, "order-returned")) == 1  # the units went back on sale once


def test_a_refund_started_again_whose_answer_is_lost_is_pending_for_the_fallback_job_and_not_started_a_third_time(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order = part_shipped(shop)
    payments.error = WechatPayApiError(400, "NOT_ENOUGH", "余额不足")
    with pytest.raises(Conflict):
        cancel(shop, payments, order)
    channel = LostAnswerRefunds(lost_sends=1, status="SUCCESS")

    cancel(shop, channel, order, key="key-2")

    closed, again = shop.uow.refunds.refunds
    assert (again.status, order.refunded_fen, channel.sent) == ("PENDING", 1943, [again.refund_no])
    with pytest.raises(Conflict) as in_flight:
        cancel(shop, channel, order, key="key-3")
    assert in_flight.value.code == "ORDER_STATE_CONFLICT"
    channel.process()
    refunds.reconcile_refunds(lambda: shop.uow, channel, shop.members, now=CANCELLED_AT + timedelta(minutes=10))
    assert (again.status, len(shop.uow.refunds.refunds)) == ("SUCCESS", 2)
    assert [event.amount_fen for event in published(shop, "order-refunded")] == [1943]


def test_an_abnormal_refund_of_the_cancelled_units_is_asked_about_again_under_its_number_not_started_twice(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order = part_shipped(shop)
    cancel(shop, payments, order)
    [refund] = shop.uow.refunds.refunds
    payments.notice = replace(payments.asked[refund.refund_no], status="ABNORMAL")
    refunds.handle_refund_notify(shop.uow, payments, headers={"Wechatpay-Signature": "good"}, body=b"{}")
    assert (refund.status, order.refunded_fen) == ("ABNORMAL", 1943)
    payments.status = "SUCCESS"  # the merchant completed it at WeChat Pay

    cancel(shop, payments, order, key="key-2")

    assert ([r.refund_no for r in shop.uow.refunds.refunds], refund.status, order.refunded_fen) == (
        [refund.refund_no], "SUCCESS", 1943)
    assert [event.amount_fen for event in published(shop, "order-refunded")] == [1943]
    with pytest.raises(Conflict) as paid:
        cancel(shop, payments, order, key="key-3")
    assert paid.value.code == "ORDER_STATE_CONFLICT"


# The shop failed to supply the units: the points spent on them come back too (not the coupon), and a line with an
# open after-sales case comes out at exactly its paid share.

TEA, CUPS = 3, 5  # categories: the coupon is for tea only


def part_shipped_with_points(shop: Shop) -> Order:
    """3 x 1999 and 2 x 500 of tea, 3 x 1000 of cups: 9997 in goods, 499 off at a 95% level, a 1000 coupon on the tea
    only, 73,300 points (733 fen) and 800 freight: 8565 paid with WeChat Pay. One unit of the first tea and one cup
    shipped; the rest never will."""
    shop.settings = replace(shop.settings, freight=FreightRule(flat_fen=800))
    shop.catalog.put(103, price_fen=1000, category_id=CUPS)
    shop.stock.available[103] = 10
    shop.members.bp, shop.members.coupon_fen, shop.members.coupon_categories = 9_500, 1000, (TEA,)
    shop.members.points = 73_300
    cart = [service.add_cart_item(shop.uow, shop.catalog, user_id=1, sku_id=sku_id, quantity=quantity, now=NOW)
            for sku_id, quantity in ((101, 3), (102, 2), (103, 3))]
    order = service.submit_order(shop.uow, shop.members, shop.stock, shop.users, shop.settings, user_id=1,
                                 request=CheckoutInput(cart_item_ids=tuple(line.item.id or 0 for line in cart),
                                                       address_id=7, coupon_id=9, points=73_300),
                                 note="", idempotency_key="k", request_fingerprint=b"k", now=NOW)
    order = service.mark_paid(shop.uow, order_no=order.order_no, channel="wechat", out_trade_no=order.order_no,
                              paid_fen=order.payable_fen, actor="wechatpay", now=NOW)
    tea, _, cups = order.lines
    service.ship_order(shop.uow, order_id=order.id or 0, carrier="SF", tracking_no="SF1",
                       lines={tea.id or 0: 1, cups.id or 0: 1}, actor="staff:7", now=LATER)
    return order


def test_the_points_spent_on_the_cancelled_units_come_back_once_with_their_refund_but_not_the_coupon(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order = part_shipped_with_points(shop)
    assert (order.payable_fen, order.coupon_discount_fen, order.points_used) == (8565, 1000, 73_300)
    assert [(paid_shares(order)[line.id or 0], points_shares(order)[line.id or 0]) for line in order.lines] == [
        (4422, 41_751), (738, 6963), (2605, 24_586)]

    cancel(shop, payments, order)

    # 2 of 3 tea units: 2948 fen and 27,834 points; the 2 other teas, all of the line: 738 and 6963; 2 of 3 cups:
    # 1736 and 16,390. The coupon's discount stays with the kept tea (its cash share is net of it).
    [refund] = shop.uow.refunds.refunds
    assert (refund.amount_fen, refund.points_returned, published(shop, "order-refunded")) == (5422, 51_187, [])
    for _ in range(2):
        refunds.settle_refund(shop.uow, refund_no=refund.refund_no, status=refunds.RefundStatus.SUCCESS,
                              actor="wechatpay", now=CANCELLED_AT)
    [event] = published(shop, "order-refunded")
    assert (event.refund_no, event.amount_fen, event.points_returned) == (refund.refund_no, 5422, 51_187)


def test_the_shipped_units_refunded_later_return_the_rest_of_the_cash_and_no_points(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order = part_shipped_with_points(shop)
    cancel(shop, payments, order)
    tea, _, cups = order.lines

    refunds.start_refund(shop.uow, payments, shop.members, order_id=order.id or 0, reason="质量问题", actor="staff:9",
                         items=[RefundItem(line.id or 0, 1, line_refund_fen(order, line.id or 0, 1))
                                for line in (tea, cups)], source="after_sale:1", now=CANCELLED_AT)

    cancelled, after_sale = shop.uow.refunds.refunds
    assert (after_sale.amount_fen, after_sale.points_returned) == (1474 + 869, 0)
    assert (order.refunded_fen, cancelled.points_returned) == (8565 - 800, 51_187)  # the cash exactly, never freight
    assert order.kept() == []


def test_units_paid_with_points_alone_get_their_points_back_in_a_refund_of_0_fen(
        shop: Shop, payments: FakeRefundPayments) -> None:
    shop.settings = replace(shop.settings, freight=FreightRule(flat_fen=800))
    shop.members.points = 399_800  # the whole 3998 of goods: only the freight is paid
    item = service.add_cart_item(shop.uow, shop.catalog, user_id=1, sku_id=101, quantity=2, now=NOW).item
    order = service.submit_order(shop.uow, shop.members, shop.stock, shop.users, shop.settings, user_id=1,
                                 request=CheckoutInput(cart_item_ids=(item.id or 0,), address_id=7, points=399_800),
                                 note="", idempotency_key="k", request_fingerprint=b"k", now=NOW)
    order = service.mark_paid(shop.uow, order_no=order.order_no, channel="wechat", out_trade_no=order.order_no,
                              paid_fen=order.payable_fen, actor="wechatpay", now=NOW)
    service.ship_order(shop.uow, order_id=order.id or 0, carrier="SF", tracking_no="SF1",
                       lines={order.lines[0].id or 0: 1}, actor="staff:7", now=LATER)

    cancel(shop, payments, order)

    [refund] = shop.uow.refunds.refunds
    assert (refund.amount_fen, refund.status, refund.channel, payments.asked) == (0, "SUCCESS", "none", {})
    [event] = published(shop, "order-refunded")
    assert (event.amount_fen, event.points_returned) == (0, 199_900)


def test_a_line_with_an_open_case_on_its_shipped_unit_is_refunded_exactly_its_paid_share(
        shop: Shop, payments: FakeRefundPayments) -> None:
    order = part_shipped_with_points(shop)
    cups = order.lines[2]
    case = aftersales.open_case(shop.uow, aftersales.AfterSaleSettings(), user_id=1, now=CANCELLED_AT,
                                request=aftersales.CaseRequest(order_id=order.id or 0, type="refund_only",
                                                               lines={cups.id or 0: 1}, reason="碎了"))
    assert case.refund_fen == 2605 // 3  # 868, fixed when opened; reserved only once its refund starts

    cancel(shop, payments, order)
    aftersales.decide(lambda: shop.uow, aftersales.EngineRefunder(payments, shop.members), case_id=case.id or 0,
                      approve=True, reason="ok", actor="staff:8", now=CANCELLED_AT)

    # The two cancelled cups take what the case's floored unit left: 2605 - 868 = 1737, not another floor (1736).
    assert [(line.line_id, line.amount_fen) for refund in shop.uow.refunds.refunds for line in refund.lines
            if line.line_id == cups.id] == [(cups.id, 1737), (cups.id, 868)]
    assert (cups.refunded_quantity, cups.refunded_fen) == (3, 2605)


# Units cancelled unshipped are never claimable in after-sales, whatever became of their refund: when it is CLOSED
# (WeChat Pay refused it, or staff closed an ABNORMAL one) their units are no longer reserved on the lines, yet they
# were never shipped, they went back on sale, and cancel-unshipped still owes their money.

AFTER = CANCELLED_AT + timedelta(hours=1)


@pytest.fixture(params=["refused", "abnormal closed by staff"])
def owed(request: pytest.FixtureRequest, shop: Shop, payments: FakeRefundPayments) -> Order:
    """`part_shipped` with its unshipped units cancelled and restocked, their 1943-fen refund CLOSED: still owed."""
    order = part_shipped(shop)
    if request.param == "refused":
        payments.error = WechatPayApiError(400, "NOT_ENOUGH", "余额不足")
        with pytest.raises(Conflict):
            cancel(shop, payments, order)
        payments.error = None
    else:
        cancel(shop, payments, order)
        [refund] = shop.uow.refunds.refunds
        payments.notice = replace(payments.asked[refund.refund_no], status="ABNORMAL")
        refunds.handle_refund_notify(shop.uow, payments, headers={"Wechatpay-Signature": "good"}, body=b"{}")
        payments.status = "ABNORMAL"
        refunds.close_refund(shop.uow, payments, refund_no=refund.refund_no, reason="银行卡已注销", actor="staff:9",
                             now=CANCELLED_AT)
        payments.status = "PROCESSING"
    [closed] = shop.uow.refunds.refunds
    assert (closed.status, closed.amount_fen, order.status) == ("CLOSED", 1943, "SHIPPED")
    assert [line.refunded_quantity for line in order.lines] == [0, 0]
    return order


def open_case(shop: Shop, order: Order, lines: dict[int, int], kind: str = "refund_only") -> aftersales.AfterSale:
    return aftersales.open_case(shop.uow, aftersales.AfterSaleSettings(), user_id=1, now=AFTER,
                                request=aftersales.CaseRequest(order_id=order.id or 0, type=kind, lines=lines,
                                                               reason="坏了"))


@pytest.mark.parametrize("kind", aftersales.TYPES)
def test_a_cancelled_unit_cannot_be_claimed_in_after_sales_once_its_refund_was_closed(
        shop: Shop, owed: Order, kind: str) -> None:
    second = owed.lines[1]

    with pytest.raises(Conflict) as refused:
        open_case(shop, owed, {second.id or 0: 1}, kind)

    assert (refused.value.code, refused.value.details) == ("AFTER_SALE_QUANTITY_INVALID",
                                                           {"line_id": second.id, "left": 0})
    assert shop.uow.after_sales.for_order(owed.id or 0) == []


def test_every_unit_of_a_line_means_its_shipped_units_once_the_cancelled_units_refund_was_closed(
        shop: Shop, owed: Order) -> None:
    first, second = owed.lines

    with pytest.raises(Conflict) as both:
        open_case(shop, owed, {first.id or 0: 0, second.id or 0: 0})
    with pytest.raises(Conflict) as two:
        open_case(shop, owed, {first.id or 0: 2})
    case = open_case(shop, owed, {first.id or 0: 0})

    assert (both.value.details, two.value.details) == ({"line_id": second.id, "left": 0},
                                                       {"line_id": first.id, "left": 1})
    assert ([(line.line_id, line.quantity, line.amount_fen) for line in case.lines], case.refund_fen) == (
        [(first.id, 1, 1554)], 1554)


def test_a_cancelled_unit_stays_unclaimable_once_the_order_is_completed(shop: Shop, owed: Order) -> None:
    service.confirm_receipt(shop.uow, user_id=1, order_id=owed.id or 0, now=AFTER)

    with pytest.raises(Conflict) as refused:
        open_case(shop, owed, {owed.lines[1].id or 0: 0})

    assert (owed.status, refused.value.details) == ("COMPLETED", {"line_id": owed.lines[1].id, "left": 0})


def test_a_return_once_the_cancelled_units_refund_was_closed_restocks_and_refunds_only_the_shipped_unit(
        shop: Shop, payments: FakeRefundPayments, owed: Order) -> None:
    first = owed.lines[0]
    engine = aftersales.EngineRefunder(payments, shop.members)
    case = open_case(shop, owed, {first.id or 0: 0}, "return_refund")
    aftersales.decide(lambda: shop.uow, engine, case_id=case.id or 0, approve=True, reason="ok", actor="staff:8",
                      now=AFTER)
    aftersales.submit_return_shipment(shop.uow, user_id=1, case_id=case.id or 0, carrier="SF", tracking_no="R1",
                                      now=AFTER)

    done = aftersales.receive_return(lambda: shop.uow, engine, case_id=case.id or 0, note="ok", actor="staff:8",
                                     now=AFTER)

    assert [[(line.sku_id, line.quantity) for line in event.lines] for event in published(shop, "order-returned")] \
        == [[(101, 1), (102, 1)], [(101, 1)]]  # the cancelled units went back on sale once, the returned unit once
    assert (done.status, payments.asked[done.refund_no].refund_fen) == ("REFUNDING", 1554)


def test_cancel_unshipped_again_pays_the_owed_refund_after_a_case_refunded_every_unit_the_shopper_got(
        shop: Shop, payments: FakeRefundPayments, owed: Order) -> None:
    first, second = owed.lines
    case = open_case(shop, owed, {first.id or 0: 0})
    aftersales.decide(lambda: shop.uow, aftersales.EngineRefunder(payments, shop.members), case_id=case.id or 0,
                      approve=True, reason="ok", actor="staff:8", now=AFTER)

    cancel(shop, payments, owed, key="key-2")

    again = shop.uow.refunds.refunds[-1]
    assert (again.source, again.status, [(line.line_id, line.quantity, line.amount_fen) for line in again.lines]) == (
        "cancel_unshipped", "PENDING", [(first.id, 1, 1554), (second.id, 1, 389)])
    assert (owed.refunded_fen, [(line.refunded_quantity, line.refunded_fen) for line in owed.lines]) == (
        3497, [(2, 3108), (1, 389)])  # every fen of goods paid, each unit once
    assert len(published(shop, "order-returned")) == 1


def opened_before_the_fix(shop: Shop, order: Order, kind: str, status: str) -> aftersales.AfterSale:
    """A case on the never-shipped unit of line 2, as after-sales let a shopper open one once the cancelled units'
    refund was closed (only their refund's reservation kept them out), left `status`."""
    case = aftersales.AfterSale(case_no="AS1", order_id=order.id or 0, order_no=order.order_no, user_id=1, type=kind,
                                status=status, reason="坏了", images=[], refund_fen=389, created_at=AFTER,
                                updated_at=AFTER, lines=[aftersales.CaseLine(order.lines[1].id or 0, 1, 389)])
    with shop.uow as tx:
        tx.after_sales.add(case)
        tx.commit()
    return case


@pytest.mark.parametrize("kind", aftersales.TYPES)
def test_a_case_opened_on_a_cancelled_unit_before_the_fix_cannot_be_approved(
        shop: Shop, payments: FakeRefundPayments, owed: Order, kind: str) -> None:
    case = opened_before_the_fix(shop, owed, kind, "REQUESTED")

    with pytest.raises(Conflict) as refused:
        aftersales.decide(lambda: shop.uow, aftersales.EngineRefunder(payments, shop.members), case_id=case.id or 0,
                          approve=True, reason="ok", actor="staff:8", now=AFTER)

    assert (refused.value.code, refused.value.details) == ("AFTER_SALE_QUANTITY_INVALID",
                                                           {"line_id": owed.lines[1].id, "left": 0})
    assert (case.status, len(shop.uow.refunds.refunds), owed.refunded_fen) == ("REQUESTED", 1, 0)


def test_a_return_opened_on_a_cancelled_unit_before_the_fix_is_not_received_nor_restocked_again(
        shop: Shop, payments: FakeRefundPayments, owed: Order) -> None:
    case = opened_before_the_fix(shop, owed, "return_refund", "RETURN_SHIPPED")

    with pytest.raises(Conflict) as refused:
        aftersales.receive_return(lambda: shop.uow, aftersales.EngineRefunder(payments, shop.members),
                                  case_id=case.id or 0, note="ok", actor="staff:8", now=AFTER)

    assert refused.value.code == "AFTER_SALE_QUANTITY_INVALID"
    assert (case.status, len(published(shop, "order-returned")), len(shop.uow.refunds.refunds)) == (
        "RETURN_SHIPPED", 1, 1)


def test_a_cancelled_units_refund_closed_by_staff_that_wechat_pay_pays_after_all_counts_and_is_not_started_again(
        shop: Shop, payments: FakeRefundPayments) -> None:
    """Staff closed the cancelled units' ABNORMAL refund (owed: "cancel-unshipped starts it again"), then WeChat Pay
    paid it after all: the money went back, so it counts as the units' refund (amounts on the lines, order-refunded
    with the points) and cancel-unshipped refuses to start it a second time."""
    order = part_shipped(shop)
    payments.status = "ABNORMAL"
    cancel(shop, payments, order)
    [refund] = shop.uow.refunds.refunds
    refunds.close_refund(shop.uow, payments, refund_no=refund.refund_no, reason="卡已注销", actor="staff:1",
                         now=CANCELLED_AT)
    assert (refund.status, order.refunded_fen, [line.refunded_quantity for line in order.lines]) == ("CLOSED", 0, [0, 0])

    payments.notice = replace(payments.asked[refund.refund_no], status="SUCCESS")
    for _ in range(2):
        refunds.handle_refund_notify(shop.uow, payments, headers={"Wechatpay-Signature": "good"}, body=b"{}",
                                     now=CANCELLED_AT + timedelta(hours=1))

    assert (refund.status, order.status, order.refunded_fen) == ("CLOSED", "SHIPPED", 1943)
    assert [line.refunded_quantity for line in order.lines] == [1, 1]
    assert [event.amount_fen for event in published(shop, "order-refunded")] == [1943]
    with pytest.raises(Conflict) as again:
        cancel(shop, payments, order, key="key-2")
    assert (again.value.code, len(shop.uow.refunds.refunds), order.refunded_fen) == ("ORDER_STATE_CONFLICT", 1, 1943)


def test_a_refund_started_again_that_closes_once_wechat_pay_paid_the_closed_one_leaves_nothing_owed(
        shop: Shop, payments: FakeRefundPayments) -> None:
    """Staff closed the cancelled units' ABNORMAL refund and started it again; WeChat Pay then paid the closed one
    after all (it waits: the second holds its 1943 fen), and the second closes: the first counts, nothing is owed, and
    cancel-unshipped refuses to start a third."""
    order = part_shipped(shop)
    payments.status = "ABNORMAL"
    cancel(shop, payments, order)
    [first] = shop.uow.refunds.refunds
    refunds.close_refund(shop.uow, payments, refund_no=first.refund_no, reason="卡已注销", actor="staff:1",
                         now=CANCELLED_AT)
    payments.status = "PROCESSING"
    cancel(shop, payments, order, key="key-2")
    payments.notice = replace(payments.asked[first.refund_no], status="SUCCESS")
    refunds.handle_refund_notify(shop.uow, payments, headers={"Wechatpay-Signature": "good"}, body=b"{}", now=AFTER)
    [_, second] = shop.uow.refunds.refunds

    refunds.settle_refund(shop.uow, refund_no=second.refund_no, status=refunds.RefundStatus.CLOSED,
                          actor="wechatpay", now=AFTER)

    assert (first.paid_after_close_waiting_at, second.status, order.refunded_fen) == (None, "CLOSED", 1943)
    assert [event.refund_no for event in published(shop, "order-refunded")] == [first.refund_no]
    assert order.history[-1].reason == (f"refund {second.refund_no} of the cancelled unshipped units was closed: "
                                        f"nothing owed, WeChat Pay paid {first.refund_no} after its close")
    with pytest.raises(Conflict) as again:
        cancel(shop, payments, order, key="key-3")
    assert (again.value.code, len(shop.uow.refunds.refunds), order.refunded_fen) == ("ORDER_STATE_CONFLICT", 2, 1943)
