"""Order use cases on fakes: cart, quote and submit, cancel, pay, notify, timeout."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from services.common.errors import Conflict, DomainError, InvalidInput, NotFound
from services.common.wechatpay import (
    NotifyRejected,
    PaymentNotice,
    WechatPayApiError,
    WechatPayError,
    WechatPayUnavailable,
)
from services.common.wechatpay import (
    Refund as ChannelRefund,
)
from services.order import refunds, service
from services.order.domain import MAX_CART_LINES, MAX_WECHAT_ATTEMPTS, Order, order_no_of_trade
from services.order.ports import CouponLine, CouponOffer
from services.order.service import CheckoutInput
from tests.fakes import FakeRefundPayments, paid_while_closing
from tests.unit.order.conftest import NOW, Shop, late_money


def submit(shop: Shop, request: CheckoutInput, *, user_id: int = 1, key: str = "k1", now: datetime = NOW) -> Order:
    return service.submit_order(shop.uow, shop.members, shop.stock, shop.users, shop.settings,
                                user_id=user_id, request=request, note="", idempotency_key=key,
                                request_fingerprint=repr(request).encode(), now=now)


BUY_TWO = CheckoutInput(sku_id=101, quantity=2, address_id=7)


def test_adding_a_sku_twice_merges_into_one_line_and_publishes_each_addition(shop: Shop) -> None:
    service.add_cart_item(shop.uow, shop.catalog, user_id=1, sku_id=101, quantity=2, now=NOW)
    line = service.add_cart_item(shop.uow, shop.catalog, user_id=1, sku_id=101, quantity=3, now=NOW)
    assert line.item.quantity == 5
    assert len(shop.uow.carts.items) == 1
    assert [event.payload.quantity for event in shop.uow.published] == [2, 3]
    assert {event.event_type for event in shop.uow.published} == {"cart-item-added"}


def test_a_line_holds_at_most_999_and_a_cart_at_most_100_lines(shop: Shop) -> None:
    service.add_cart_item(shop.uow, shop.catalog, user_id=1, sku_id=101, quantity=999, now=NOW)
    with pytest.raises(DomainError) as line_full:
        service.add_cart_item(shop.uow, shop.catalog, user_id=1, sku_id=101, quantity=1, now=NOW)
    assert line_full.value.code == "CART_LINE_FULL"
    for sku_id in range(1000, 1000 + MAX_CART_LINES - 1):
        shop.catalog.put(sku_id)
        service.add_cart_item(shop.uow, shop.catalog, user_id=1, sku_id=sku_id, quantity=1, now=NOW)
    shop.catalog.put(5000)
    with pytest.raises(DomainError) as full:
        service.add_cart_item(shop.uow, shop.catalog, user_id=1, sku_id=5000, quantity=1, now=NOW)
    assert full.value.code == "CART_FULL"


def test_adding_a_valid_quantity_to_a_line_that_cannot_hold_it_names_what_the_line_holds(shop: Shop) -> None:
    """Not QUANTITY_INVALID ("1 to 999") for a request whose own quantity is 1 to 999 (found by fuzzing)."""
    service.add_cart_item(shop.uow, shop.catalog, user_id=1, sku_id=101, quantity=5, now=NOW)
    with pytest.raises(DomainError) as refused:
        service.add_cart_item(shop.uow, shop.catalog, user_id=1, sku_id=101, quantity=999, now=NOW)
    assert not isinstance(refused.value, InvalidInput)  # 422, not 400: the request itself is well formed
    assert (refused.value.code, refused.value.details) == ("CART_LINE_FULL", {"in_cart": 5, "can_add": 994})
    assert shop.uow.carts.items[0].quantity == 5


def test_the_cart_shows_live_prices_flags_changes_and_off_shelf_lines_as_invalid(shop: Shop) -> None:
    service.add_cart_item(shop.uow, shop.catalog, user_id=1, sku_id=101, quantity=1, now=NOW)
    service.add_cart_item(shop.uow, shop.catalog, user_id=1, sku_id=102, quantity=2, now=NOW)
    shop.catalog.put(101, price_fen=1799)
    shop.catalog.put(102, price_fen=500, on_sale=False)
    cart = service.list_cart(shop.uow, shop.catalog, user_id=1)
    assert [(line.price_fen, line.price_changed, line.valid) for line in cart.lines] == [(1799, True, True),
                                                                                          (500, False, False)]
    assert cart.selected_total_fen == 1799


def test_another_users_cart_item_is_not_found(shop: Shop) -> None:
    line = service.add_cart_item(shop.uow, shop.catalog, user_id=1, sku_id=101, quantity=1, now=NOW)
    with pytest.raises(NotFound):
        service.change_cart_item(shop.uow, shop.catalog, user_id=2, item_id=line.item.id or 0, quantity=3)
    with pytest.raises(NotFound):
        service.remove_cart_item(shop.uow, user_id=2, item_id=line.item.id or 0)
    service.change_cart_item(shop.uow, shop.catalog, user_id=1, item_id=line.item.id or 0, selected=False)
    assert shop.uow.carts.items[0].selected is False


def test_a_cart_change_with_neither_quantity_nor_selection_is_refused(shop: Shop) -> None:
    line = service.add_cart_item(shop.uow, shop.catalog, user_id=1, sku_id=101, quantity=2, now=NOW)
    with pytest.raises(InvalidInput) as refused:
        service.change_cart_item(shop.uow, shop.catalog, user_id=1, item_id=line.item.id or 0)
    assert (refused.value.code, shop.uow.carts.items[0].quantity, shop.uow.carts.items[0].selected) == (
        "CART_ITEM_CHANGE_EMPTY", 2, True)


def test_quote_and_submit_charge_the_same_exact_amounts(shop: Shop) -> None:
    shop.members.bp, shop.members.coupon_fen, shop.members.points = 9_500, 500, 300
    request = replace(BUY_TWO, coupon_id=9, points=300)
    quote = service.quote_checkout(shop.uow, shop.catalog, shop.members, shop.users, shop.settings, user_id=1,
                                   request=request)
    order = submit(shop, request)
    assert quote.amounts == order.amounts
    # 3998 items, 199 level (floor of 199.9), 500 coupon, 300 points = 3 yuan, no freight.
    assert (order.items_total_fen, order.level_discount_fen, order.coupon_discount_fen, order.points_discount_fen,
            order.payable_fen) == (3998, 199, 500, 3, 3296)


def test_preview_usable_coupons_and_submit_give_the_member_service_each_lines_category_path(shop: Shop) -> None:
    shop.catalog.put(101, price_fen=1999, category_id=2, category_path=(1, 2))  # 数码 > 手机
    shop.catalog.put(102, price_fen=500, category_id=5, category_path=(4, 5))   # 家居 > 沙发
    shop.members.coupon_fen, shop.members.coupon_categories = 300, (1,)          # a 数码 coupon
    ids = tuple(service.add_cart_item(shop.uow, shop.catalog, user_id=1, sku_id=sku_id, quantity=quantity,
                                      now=NOW).item.id or 0 for sku_id, quantity in ((101, 2), (102, 1)))
    request = CheckoutInput(cart_item_ids=ids, address_id=7, coupon_id=9)

    quote = service.quote_checkout(shop.uow, shop.catalog, shop.members, shop.users, shop.settings, user_id=1,
                                   request=request)
    order = submit(shop, request)

    sent = [CouponLine(2, 3998, (1, 2)), CouponLine(5, 500, (4, 5))]
    assert shop.members.coupon_lines == {"quote_coupon": sent, "usable_coupons": sent, "lock_coupon": sent}
    assert (quote.amounts, [line.coupon_applied for line in order.lines]) == (order.amounts, [True, False])
    assert order.coupon_discount_fen == 300


def test_coupons_are_quoted_and_locked_on_what_a_member_pays_for_each_line_after_the_level_discount(
        shop: Shop) -> None:
    shop.catalog.put(101, price_fen=1999, category_id=2, category_path=(1, 2))
    shop.catalog.put(102, price_fen=333, category_id=5, category_path=(4, 5))
    shop.members.bp, shop.members.coupon_fen = 9_025, 300  # gold with PLUS: 90.25% paid
    ids = tuple(service.add_cart_item(shop.uow, shop.catalog, user_id=1, sku_id=sku_id, quantity=quantity,
                                      now=NOW).item.id or 0 for sku_id, quantity in ((101, 2), (102, 3)))
    request = CheckoutInput(cart_item_ids=ids, address_id=7, coupon_id=9)

    service.quote_checkout(shop.uow, shop.catalog, shop.members, shop.users, shop.settings, user_id=1,
                           request=request)
    order = submit(shop, request)

    # 3998 less floor(3998 x 9.75%) = 389 is 3609; 999 less floor(97.4025) = 97 is 902: a 满4000 threshold is not met
    # by what this member pays (4511), and a percent coupon takes its share of that, not of the 4997 list total.
    sent = [CouponLine(2, 3609, (1, 2)), CouponLine(5, 902, (4, 5))]
    assert shop.members.coupon_lines == {"quote_coupon": sent, "usable_coupons": sent, "lock_coupon": sent}
    assert (order.items_total_fen, order.level_discount_fen, order.coupon_discount_fen) == (4997, 487, 300)


def test_the_quote_lists_the_coupons_usable_for_its_lines(shop: Shop) -> None:
    offer = CouponOffer(coupon_id=9, name="满10减5", discount_fen=500, valid_to=NOW + timedelta(days=7))
    shop.members.offers = [offer]
    quote = service.quote_checkout(shop.uow, shop.catalog, shop.members, shop.users, shop.settings, user_id=1,
                                   request=BUY_TWO)
    assert quote.usable_coupons == [offer] and quote.amounts.coupon_discount_fen == 0


def test_the_quote_lists_each_coupon_at_what_it_takes_off_after_the_level_discount_biggest_first(shop: Shop) -> None:
    shop.catalog.put(101, price_fen=5000)
    shop.members.bp, shop.members.coupon_fen = 9_500, 5000  # gold; coupon 9 quoted at its face value
    week = NOW + timedelta(days=7)
    shop.members.offers = [CouponOffer(9, "减50", 5000, week + timedelta(days=1)),
                           CouponOffer(4, "减48", 4800, week), CouponOffer(2, "减3", 300, week)]
    request = CheckoutInput(sku_id=101, quantity=1, address_id=7, coupon_id=9)

    quote = service.quote_checkout(shop.uow, shop.catalog, shop.members, shop.users, shop.settings, user_id=1,
                                   request=request)

    # 5000 items, 250 level: neither 50-yuan nor 48-yuan coupon can take more than the 4750 left, so both take
    # 4750 and the one ending first leads.
    assert [(offer.coupon_id, offer.discount_fen) for offer in quote.usable_coupons] == [(4, 4750), (9, 4750),
                                                                                          (2, 300)]
    assert (quote.amounts.level_discount_fen, quote.amounts.coupon_discount_fen) == (250, 4750)


def test_a_gold_member_with_plus_is_quoted_and_charged_exactly_90_25_percent_coupons_capped_by_it(shop: Shop) -> None:
    shop.catalog.put(101, price_fen=50_000)
    shop.members.bp = 95 * 95  # gold 95% x PLUS 95%, exact (the member service's 9025; it once floored it to 90%)
    shop.members.offers = [CouponOffer(9, "减950", 95_000, NOW + timedelta(days=7))]

    quote = service.quote_checkout(shop.uow, shop.catalog, shop.members, shop.users, shop.settings, user_id=1,
                                   request=BUY_TWO)
    order = submit(shop, BUY_TWO)

    # 100,000 items, 9,750 off (not 10,000): 90,250 paid; the coupon is offered at what is left after it.
    assert (order.items_total_fen, order.level_discount_fen, order.payable_fen) == (100_000, 9_750, 90_250)
    assert quote.amounts == order.amounts
    assert [(offer.coupon_id, offer.discount_fen) for offer in quote.usable_coupons] == [(9, 90_250)]


@pytest.mark.parametrize("address_id", [99, 8], ids=["no_such_address", "another_users_address"])
def test_the_quote_refuses_an_address_as_submit_does(shop: Shop, address_id: int) -> None:
    request = replace(BUY_TWO, address_id=address_id)
    with pytest.raises(NotFound) as quoted:
        service.quote_checkout(shop.uow, shop.catalog, shop.members, shop.users, shop.settings, user_id=1,
                               request=request)
    with pytest.raises(NotFound) as submitted:
        submit(shop, request)
    assert (quoted.value.code, submitted.value.code, shop.stock.available[101]) == (
        "ADDRESS_NOT_FOUND", "ADDRESS_NOT_FOUND", 10)


class NoUsers:
    def buyer_address(self, user_id: int, address_id: int) -> None:
        raise AssertionError("the user service was asked")


def test_a_quote_without_an_address_asks_the_user_service_nothing(shop: Shop) -> None:
    quote = service.quote_checkout(shop.uow, shop.catalog, shop.members, NoUsers(), shop.settings,  # type: ignore[arg-type]
                                   user_id=1, request=replace(BUY_TWO, address_id=0))
    assert (quote.amounts.items_total_fen, quote.amounts.payable_fen) == (3998, 3998)


def test_an_unverified_shopper_is_quoted_all_the_same(shop: Shop) -> None:
    shop.users.verified_ids = set()
    quote = service.quote_checkout(shop.uow, shop.catalog, shop.members, shop.users, shop.settings, user_id=1,
                                   request=BUY_TWO)
    assert quote.amounts.payable_fen == 3998


def test_submit_reserves_stock_snapshots_and_publishes_order_created_once(shop: Shop) -> None:
    order = submit(shop, BUY_TWO)
    assert shop.stock.available[101] == 8
    assert order.address.province == "浙江省" and order.lines[0].name == "商品101" and order.lines[0].price_fen == 1999
    assert [event.event_type for event in shop.uow.published] == ["order-created"]
    assert shop.uow.published[0].payload.amounts.payable_fen == 3998


def test_the_same_key_and_body_returns_the_first_order_and_another_body_is_409(shop: Shop) -> None:
    first = submit(shop, BUY_TWO)
    assert submit(shop, BUY_TWO).id == first.id
    assert shop.stock.available[101] == 8 and len(shop.uow.orders.orders) == 1
    with pytest.raises(Conflict):
        submit(shop, replace(BUY_TWO, quantity=1))


def test_an_unverified_shopper_cannot_order(shop: Shop) -> None:
    shop.users.verified_ids = set()
    with pytest.raises(DomainError) as refused:
        submit(shop, BUY_TWO)
    assert refused.value.code == "IDENTITY_NOT_VERIFIED" and refused.value.kind.value == "business_rule"


def test_a_failure_after_the_reservation_releases_stock_coupon_and_points(shop: Shop) -> None:
    shop.members.fail_points, shop.members.points = True, 100
    with pytest.raises(DomainError):
        submit(shop, replace(BUY_TWO, coupon_id=9, points=100))
    assert shop.stock.available[101] == 10
    assert shop.members.locked_coupons == {} and shop.uow.orders.orders == [] and shop.uow.published == []


def test_client_cannot_check_out_an_off_shelf_sku(shop: Shop) -> None:
    shop.catalog.put(101, on_sale=False)
    with pytest.raises(DomainError) as refused:
        submit(shop, BUY_TWO)
    assert refused.value.code == "SKU_UNAVAILABLE" and shop.stock.reserved == {}


@pytest.mark.parametrize("available", [0, 1])
def test_a_reservation_refused_needs_no_release(shop: Shop, available: int) -> None:
    shop.stock.available[101] = available  # the flash sale's losers: one call to the product service, not two
    with pytest.raises(DomainError) as refused:
        submit(shop, BUY_TWO)
    assert (refused.value.code, shop.stock.reserved, shop.stock.released) == ("OUT_OF_STOCK", {}, [])


def test_a_reservation_whose_answer_was_lost_is_released(shop: Shop) -> None:
    shop.stock.lost_answer = True  # held at the product service, but the call failed on the way back
    with pytest.raises(DomainError) as failed:
        submit(shop, BUY_TWO)
    assert (failed.value.code, len(shop.stock.released), shop.stock.available[101]) == ("PRODUCT_UNAVAILABLE", 1, 10)


def test_checkout_of_cart_lines_removes_them_from_the_cart(shop: Shop) -> None:
    line = service.add_cart_item(shop.uow, shop.catalog, user_id=1, sku_id=102, quantity=4, now=NOW)
    order = submit(shop, CheckoutInput(cart_item_ids=(line.item.id or 0,), address_id=7))
    assert order.items_total_fen == 2000 and shop.uow.carts.items == []


def test_another_users_order_is_not_found_for_reading_paying_and_cancelling(shop: Shop) -> None:
    order = submit(shop, BUY_TWO)
    with pytest.raises(NotFound):
        service.get_order(shop.uow, user_id=2, order_id=order.id or 0)
    with pytest.raises(NotFound):
        service.pay_order(shop.uow, shop.members, shop.users, None, shop.settings, user_id=2, order_id=order.id or 0,
                          channel="balance", now=NOW)
    with pytest.raises(NotFound):
        service.cancel_order(shop.uow, user_id=2, order_id=order.id or 0, reason="", now=NOW)


def test_cancelling_an_unpaid_order_publishes_order_cancelled_and_a_second_cancel_is_409(shop: Shop) -> None:
    order = submit(shop, BUY_TWO)
    service.cancel_order(shop.uow, user_id=1, order_id=order.id or 0, reason="changed my mind", now=NOW)
    assert order.status == "CANCELLED"
    assert shop.uow.published[-1].event_type == "order-cancelled"
    assert shop.uow.published[-1].payload.cancelled_by == "shopper"
    with pytest.raises(Conflict) as again:
        service.cancel_order(shop.uow, user_id=1, order_id=order.id or 0, reason="", now=NOW)
    assert again.value.details["status"] == "CANCELLED"


def test_balance_payment_pays_once_and_publishes_order_paid(shop: Shop) -> None:
    shop.members.balance_fen = 10000
    order = submit(shop, BUY_TWO)
    paid = service.pay_order(shop.uow, shop.members, shop.users, None, shop.settings, user_id=1, order_id=order.id or 0,
                             channel="balance", now=NOW)
    assert paid.status == "PAID" and shop.members.balance_payments == [(order.order_no, 3998)]
    assert [event.event_type for event in shop.uow.published] == ["order-created", "order-paid"]
    with pytest.raises(Conflict):
        service.pay_order(shop.uow, shop.members, shop.users, None, shop.settings, user_id=1, order_id=order.id or 0,
                          channel="balance", now=NOW)


class FakeWechatPay:
    def __init__(self, notice: PaymentNotice | None = None, close_error: WechatPayError | None = None) -> None:
        self.notice = notice
        self.close_error = close_error
        self.prepaid: list[dict[str, object]] = []
        self.refunds: list[dict[str, object]] = []
        self.closed: list[str] = []

    def close(self, out_trade_no: str) -> None:
        if self.close_error is not None:
            raise self.close_error
        self.closed.append(out_trade_no)

    def query_by_out_trade_no(self, out_trade_no: str) -> PaymentNotice:
        assert self.notice is not None
        return self.notice

    def refund(self, *, out_trade_no: str, out_refund_no: str, refund_fen: int, total_fen: int,
               reason: str | None = None) -> ChannelRefund:
        """WeChat Pay takes it (PROCESSING); its end comes later (refund notify or query)."""
        self.refunds.append({"out_trade_no": out_trade_no, "out_refund_no": out_refund_no, "refund_fen": refund_fen,
                             "total_fen": total_fen, "reason": reason})
        return ChannelRefund(out_refund_no, f"wx-{out_refund_no}", out_trade_no, "42", "PROCESSING", refund_fen,
                             total_fen, None)

    def jsapi_prepay(self, **kwargs: object) -> str:
        self.prepaid.append(kwargs)
        return "wx-prepay-1"

    def request_payment_params(self, prepay_id: str) -> dict[str, str]:
        return {"package": f"prepay_id={prepay_id}"}

    def verify_notify(self, headers: object, body: object) -> PaymentNotice:
        if self.notice is None:
            raise NotifyRejected("bad signature")
        return self.notice


def notice(order: Order, amount_fen: int | None = None) -> PaymentNotice:
    return PaymentNotice(out_trade_no=order.order_no, transaction_id="4200001", trade_state="SUCCESS",
                         amount_total_fen=order.payable_fen if amount_fen is None else amount_fen,
                         payer_total_fen=None, mchid="m", appid="a", success_time=NOW)


def test_wechat_pay_prepays_the_payable_amount_until_the_deadline(shop: Shop) -> None:
    order = submit(shop, BUY_TWO)
    wechat = FakeWechatPay()
    started = service.pay_order(shop.uow, shop.members, shop.users, wechat, shop.settings, user_id=1, order_id=order.id or 0,
                                channel="wechat", now=NOW)
    assert started.wx_request_payment == {"package": "prepay_id=wx-prepay-1"}
    assert wechat.prepaid[0]["amount_fen"] == 3998 and wechat.prepaid[0]["time_expire"] == order.pay_deadline
    assert wechat.prepaid[0]["out_trade_no"] == order.order_no == started.out_trade_no
    assert wechat.prepaid[0]["payer_openid"] == "o-alice" and order.prepaid_at == NOW


def test_an_order_above_what_wechat_pay_takes_in_one_payment_is_refused_before_asking_it(shop: Shop) -> None:
    shop.catalog.put(900, price_fen=100_000_000)  # the most a SKU may cost (formats.SKU_PRICE_MAX_FEN)
    shop.stock.available[900] = 22
    order = submit(shop, CheckoutInput(sku_id=900, quantity=22, address_id=7))
    wechat = FakeWechatPay()

    with pytest.raises(DomainError) as refused:
        service.pay_order(shop.uow, shop.members, shop.users, wechat, shop.settings, user_id=1,
                          order_id=order.id or 0, channel="wechat", now=NOW)

    assert order.payable_fen == 2_200_000_000
    assert (refused.value.kind.name, refused.value.code, refused.value.details) == (
        "BUSINESS_RULE", "PAYMENT_AMOUNT_TOO_LARGE", {"channel": "wechat", "max_fen": 2_147_483_647})
    assert "balance" in refused.value.message
    assert (wechat.prepaid, order.status, order.prepaid_at, len(shop.uow.published)) == (
        [], "PENDING_PAYMENT", None, 1)


def test_an_order_of_exactly_what_wechat_pay_takes_in_one_payment_is_prepaid(shop: Shop) -> None:
    shop.catalog.put(900, price_fen=2_147_483_647)
    shop.stock.available[900] = 1
    order = submit(shop, CheckoutInput(sku_id=900, quantity=1, address_id=7))
    wechat = FakeWechatPay()

    service.pay_order(shop.uow, shop.members, shop.users, wechat, shop.settings, user_id=1, order_id=order.id or 0,
                      channel="wechat", now=NOW)

    assert [prepay["amount_fen"] for prepay in wechat.prepaid] == [order.payable_fen] == [2_147_483_647]


def test_wechat_pay_needs_a_bound_wechat_and_says_to_bind_it_not_to_sign_in_with_it(shop: Shop) -> None:
    order = submit(shop, BUY_TWO)
    shop.users.openids.clear()
    with pytest.raises(DomainError) as refused:
        service.pay_order(shop.uow, shop.members, shop.users, FakeWechatPay(), shop.settings, user_id=1,
                          order_id=order.id or 0, channel="wechat", now=NOW)
    assert refused.value.code == "WECHAT_NOT_BOUND"
    assert "POST /api/v1/me/wechat" in refused.value.message and "sign in" not in refused.value.message


def test_a_verified_notify_pays_once_however_often_it_is_replayed(shop: Shop) -> None:
    order = submit(shop, BUY_TWO)
    wechat = FakeWechatPay(notice(order))
    for _ in range(5):
        service.handle_wechat_notify(shop.uow, wechat, headers={}, body=b"{}", now=NOW)
    assert order.status == "PAID" and [step.status for step in order.history] == ["PENDING_PAYMENT", "PAID"]
    assert [event.event_type for event in shop.uow.published] == ["order-created", "order-paid"]


def test_a_notify_with_another_amount_or_unknown_order_is_rejected_and_changes_nothing(shop: Shop) -> None:
    order = submit(shop, BUY_TWO)
    with pytest.raises(NotifyRejected):
        service.handle_wechat_notify(shop.uow, FakeWechatPay(notice(order, 1)), headers={}, body=b"{}", now=NOW)
    with pytest.raises(NotifyRejected):
        service.handle_wechat_notify(shop.uow, FakeWechatPay(replace(notice(order), out_trade_no="nope")),
                                     headers={}, body=b"{}", now=NOW)
    with pytest.raises(NotifyRejected):
        service.handle_wechat_notify(shop.uow, FakeWechatPay(None), headers={}, body=b"{}", now=NOW)
    assert order.status == "PENDING_PAYMENT" and len(shop.uow.published) == 1


def test_the_timeout_cancels_only_unpaid_orders_past_their_deadline(shop: Shop) -> None:
    late = submit(shop, BUY_TWO, key="a")
    paid = submit(shop, BUY_TWO, key="b")
    service.mark_paid(shop.uow, order_no=paid.order_no, channel="balance", out_trade_no=paid.order_no,
                      paid_fen=paid.payable_fen, actor="user:1", now=NOW)
    assert service.expire_orders(shop.uow, now=NOW + timedelta(minutes=29)) == 0
    assert service.expire_orders(shop.uow, now=NOW + timedelta(minutes=30)) == 1
    assert (late.status, paid.status) == ("CANCELLED", "PAID")
    assert late.history[-1].actor == "system:timeout"
    assert shop.uow.published[-1].payload.cancelled_by == "timeout"


def prepaid_order(shop: Shop, key: str = "k1") -> Order:
    order = submit(shop, BUY_TWO, key=key)
    service.pay_order(shop.uow, shop.members, shop.users, FakeWechatPay(), shop.settings, user_id=1,
                      order_id=order.id or 0, channel="wechat", now=NOW)
    return order


def test_an_expired_prepaid_order_is_closed_at_wechat_pay_before_it_is_cancelled(shop: Shop) -> None:
    order = prepaid_order(shop)
    wechat = FakeWechatPay(replace(notice(order), trade_state="CLOSED", transaction_id=None))
    assert service.expire_orders(shop.uow, wechat=wechat, now=NOW + timedelta(minutes=30)) == 1
    assert (order.status, wechat.closed) == ("CANCELLED", [order.order_no])
    assert [event.event_type for event in shop.uow.published] == ["order-created", "order-cancelled"]


def test_an_expired_order_paid_just_before_the_close_is_paid_not_cancelled(shop: Shop) -> None:
    order = prepaid_order(shop)
    wechat = FakeWechatPay(notice(order), close_error=WechatPayApiError(400, "ORDERPAID", "该订单已支付"))
    assert service.expire_orders(shop.uow, wechat=wechat, now=NOW + timedelta(minutes=30)) == 1
    assert (order.status, order.history[-1].actor) == ("PAID", "system:timeout")
    assert [event.event_type for event in shop.uow.published] == ["order-created", "order-paid"]


def test_an_expired_prepaid_order_waits_while_wechat_pay_does_not_answer(shop: Shop) -> None:
    order = prepaid_order(shop)
    wechat = FakeWechatPay(notice(order), close_error=WechatPayUnavailable("no answer"))
    assert service.expire_orders(shop.uow, wechat=wechat, now=NOW + timedelta(minutes=30)) == 0
    assert order.status == "PENDING_PAYMENT" and len(shop.uow.published) == 1


def test_a_payment_for_a_cancelled_order_is_recorded_once_and_refunded_in_full(shop: Shop) -> None:
    order = submit(shop, BUY_TWO)
    service.cancel_order(shop.uow, user_id=1, order_id=order.id or 0, reason="", now=NOW)
    wechat = FakeWechatPay(notice(order))
    for _ in range(3):
        service.handle_wechat_notify(shop.uow, wechat, headers={}, body=b"{}", now=NOW)
    assert order.status == "CANCELLED" and order.paid_at is None
    assert [step.reason for step in order.history][-1].startswith("paid after cancellation, refunded")
    assert len(order.history) == 3
    assert {(r["out_refund_no"], r["refund_fen"]) for r in wechat.refunds} == {(f"LATE{order.order_no}", 3998)}
    assert [event.event_type for event in shop.uow.published] == [
        "order-created", "order-cancelled", "late-payment-received"]
    assert late_money(shop) == [  # however often WeChat Pay notifies it: one in; out once paid
        ("late-payment-received", order.order_no, "wechat", 3998, f"LATE{order.order_no}", "cancelled")]


# -- one payment per order: a prepay is closed before the order is cancelled or paid otherwise ------------------

def test_cancelling_a_prepaid_order_closes_it_at_wechat_pay_first(shop: Shop) -> None:
    order = prepaid_order(shop)
    wechat = FakeWechatPay(replace(notice(order), trade_state="CLOSED", transaction_id=None))
    service.cancel_order(shop.uow, user_id=1, order_id=order.id or 0, reason="changed my mind", wechat=wechat,
                         now=NOW)
    assert (order.status, wechat.closed) == ("CANCELLED", [order.order_no])
    assert [event.event_type for event in shop.uow.published] == ["order-created", "order-cancelled"]


def test_cancelling_an_order_paid_just_before_the_close_pays_it_and_asks_customer_service(shop: Shop) -> None:
    order = prepaid_order(shop)
    wechat = FakeWechatPay(notice(order), close_error=WechatPayApiError(400, "ORDERPAID", "该订单已支付"))
    service.cancel_order(shop.uow, user_id=1, order_id=order.id or 0, reason="changed my mind", wechat=wechat,
                         now=NOW)
    assert [step.status for step in order.history] == ["PENDING_PAYMENT", "PAID", "CANCEL_REQUESTED"]
    assert (order.pay_channel, order.paid_at) == ("wechat", NOW)
    assert [event.event_type for event in shop.uow.published] == ["order-created", "order-paid"]


def test_a_prepaid_order_stays_unpaid_and_uncancelled_while_wechat_pay_does_not_answer(shop: Shop) -> None:
    order = prepaid_order(shop)
    shop.members.balance_fen = 10000
    wechat = FakeWechatPay(notice(order), close_error=WechatPayUnavailable("no answer"))
    with pytest.raises(DomainError) as cancelling:
        service.cancel_order(shop.uow, user_id=1, order_id=order.id or 0, reason="", wechat=wechat, now=NOW)
    with pytest.raises(DomainError) as paying:
        service.pay_order(shop.uow, shop.members, shop.users, wechat, shop.settings, user_id=1,
                          order_id=order.id or 0, channel="balance", now=NOW)
    assert {cancelling.value.code, paying.value.code} == {"PAYMENT_CHANNEL_UNAVAILABLE"}
    assert (order.status, shop.members.balance_fen, len(shop.uow.published)) == ("PENDING_PAYMENT", 10000, 1)


def test_a_wallet_payment_of_a_prepaid_order_closes_wechat_pay_first_and_is_refused_if_it_paid(shop: Shop) -> None:
    order = prepaid_order(shop)
    shop.members.balance_fen = 10000
    wechat = FakeWechatPay(notice(order), close_error=WechatPayApiError(400, "ORDERPAID", "该订单已支付"))
    with pytest.raises(Conflict) as refused:
        service.pay_order(shop.uow, shop.members, shop.users, wechat, shop.settings, user_id=1,
                          order_id=order.id or 0, channel="balance", now=NOW)
    assert refused.value.code == "ORDER_ALREADY_PAID"
    assert (order.status, order.pay_channel, shop.members.balance_fen, shop.members.balance_payments) == (
        "PAID", "wechat", 10000, [])

    closed = prepaid_order(shop, key="k2")
    unpaid = FakeWechatPay(replace(notice(closed), trade_state="CLOSED", transaction_id=None))
    service.pay_order(shop.uow, shop.members, shop.users, unpaid, shop.settings, user_id=1,
                      order_id=closed.id or 0, channel="balance", now=NOW)
    assert (closed.status, unpaid.closed, shop.members.balance_fen) == ("PAID", [closed.order_no], 10000 - 3998)


class PrepayRefused(FakeWechatPay):
    """WeChat Pay answering the JSAPI prepay with `prepay_error`."""

    def __init__(self, prepay_error: WechatPayError, notice: PaymentNotice | None = None,
                 close_error: WechatPayError | None = None) -> None:
        super().__init__(notice, close_error)
        self.prepay_error = prepay_error

    def jsapi_prepay(self, **kwargs: object) -> str:
        raise self.prepay_error


def test_paying_again_an_order_paid_at_wechat_pay_whose_notify_is_late_takes_the_payment_once(shop: Shop) -> None:
    order = prepaid_order(shop)
    paid = WechatPayApiError(400, "ORDERPAID", "该订单已支付")
    wechat = PrepayRefused(WechatPayApiError(403, "ORDERPAID", "该订单已支付"), notice(order), close_error=paid)
    with pytest.raises(Conflict) as refused:
        service.pay_order(shop.uow, shop.members, shop.users, wechat, shop.settings, user_id=1,
                          order_id=order.id or 0, channel="wechat", now=NOW)
    service.handle_wechat_notify(shop.uow, wechat, headers={}, body=b"{}", now=NOW)  # the late notify after all

    assert (refused.value.code, refused.value.details) == ("ORDER_ALREADY_PAID", {"status": "PAID"})
    assert (order.status, order.pay_channel, order.history[-1].actor) == ("PAID", "wechat", "wechatpay")
    assert [event.event_type for event in shop.uow.published] == ["order-created", "order-paid"]


@pytest.mark.parametrize(("error", "kind", "code"), [
    (WechatPayApiError(400, "PARAM_ERROR", "参数错误"), "UNAVAILABLE", "PAYMENT_CHANNEL_UNAVAILABLE"),
    (WechatPayUnavailable("no answer"), "UNAVAILABLE", "PAYMENT_CHANNEL_UNAVAILABLE")])
def test_a_prepay_wechat_pay_refuses_or_does_not_answer_is_a_clear_error_and_changes_nothing(
        shop: Shop, error: WechatPayError, kind: str, code: str) -> None:
    order = submit(shop, BUY_TWO)
    with pytest.raises(DomainError) as refused:
        service.pay_order(shop.uow, shop.members, shop.users, PrepayRefused(error), shop.settings, user_id=1,
                          order_id=order.id or 0, channel="wechat", now=NOW)
    assert (refused.value.kind.name, refused.value.code) == (kind, code)
    assert (order.status, order.prepaid_at, len(shop.uow.published)) == ("PENDING_PAYMENT", None, 1)


def test_an_order_cancelled_while_wechat_pay_prepaid_it_gets_no_payment_parameters(shop: Shop) -> None:
    order = submit(shop, BUY_TWO)

    class CancelledMeanwhile(FakeWechatPay):
        def jsapi_prepay(self, **kwargs: object) -> str:
            service.cancel_order(shop.uow, user_id=1, order_id=order.id or 0, reason="changed my mind", now=NOW)
            return super().jsapi_prepay(**kwargs)

    with pytest.raises(Conflict) as refused:
        service.pay_order(shop.uow, shop.members, shop.users, CancelledMeanwhile(), shop.settings, user_id=1,
                          order_id=order.id or 0, channel="wechat", now=NOW)
    assert (refused.value.code, refused.value.details) == ("ORDER_STATE_CONFLICT", {"status": "CANCELLED",
                                                                                     "action": "pay"})
    assert (order.status, order.prepaid_at) == ("CANCELLED", None)


# What commits while the wallet is being charged (between pay_order's check and its mark_paid), and the order after it
# (the payment timeout waits for the charge: test_wallet_payment.py).
MEANWHILE = {
    "cancelled by the shopper": (lambda shop, order: service.cancel_order(
        shop.uow, user_id=1, order_id=order.id or 0, reason="changed my mind", now=NOW), ("CANCELLED", "")),
    "paid with WeChat Pay": (lambda shop, order: service.handle_wechat_notify(
        shop.uow, FakeWechatPay(notice(order)), headers={}, body=b"{}", now=NOW), ("PAID", "wechat")),
}


@pytest.mark.parametrize("meanwhile", MEANWHILE)
def test_a_wallet_charge_for_an_order_that_stopped_being_payable_meanwhile_is_credited_back_once(
        shop: Shop, monkeypatch: pytest.MonkeyPatch, meanwhile: str) -> None:
    order = submit(shop, BUY_TWO)
    shop.members.balance_fen = 10000
    charge = shop.members.pay_with_balance

    change, (status, channel) = MEANWHILE[meanwhile]

    def charged_while_it_changed(order_no: str, amount_fen: int) -> None:
        change(shop, order)
        charge(order_no, amount_fen)
    monkeypatch.setattr(shop.members, "pay_with_balance", charged_while_it_changed)

    with pytest.raises(Conflict) as refused:
        service.pay_order(shop.uow, shop.members, shop.users, None, shop.settings, user_id=1,
                          order_id=order.id or 0, channel="balance", now=NOW)

    assert refused.value.code == "ORDER_STATE_CONFLICT"
    assert (order.status, order.pay_channel, shop.members.balance_fen) == (status, channel, 10000)
    assert shop.members.balance_refunds == {f"LATEW{order.order_no}": 3998}
    assert order.history[-1].reason == f"paid from the wallet too late, refunded (LATEW{order.order_no}, 3998 fen)"
    assert [event.event_type for event in shop.uow.published].count("order-paid") == (channel == "wechat")


def test_a_wechat_payment_of_an_order_paid_from_the_wallet_is_refunded_in_full_once(shop: Shop) -> None:
    order = submit(shop, BUY_TWO)
    shop.members.balance_fen = 10000
    service.pay_order(shop.uow, shop.members, shop.users, None, shop.settings, user_id=1, order_id=order.id or 0,
                      channel="balance", now=NOW)
    wechat = FakeWechatPay(notice(order))
    for _ in range(3):
        service.handle_wechat_notify(shop.uow, wechat, headers={}, body=b"{}", now=NOW)
    assert (order.status, order.pay_channel, shop.members.balance_fen) == ("PAID", "balance", 10000 - 3998)
    assert order.history[-1].reason.startswith("paid again with WeChat Pay, refunded")
    assert {(r["out_refund_no"], r["refund_fen"]) for r in wechat.refunds} == {(f"LATE{order.order_no}", 3998)}
    assert [event.event_type for event in shop.uow.published] == [  # no order-refunded: the wallet payment stands
        "order-created", "order-paid", "late-payment-received"]
    assert late_money(shop) == [
        ("late-payment-received", order.order_no, "wechat", 3998, f"LATE{order.order_no}", "paid_otherwise")]


def test_reconciliation_refunds_a_payment_for_an_order_cancelled_since_it_was_picked(shop: Shop) -> None:
    order = prepaid_order(shop)

    class CancelledMeanwhile(FakeWechatPay):
        def query_by_out_trade_no(self, out_trade_no: str) -> PaymentNotice:
            service.cancel_order(shop.uow, user_id=1, order_id=order.id or 0, reason="", now=NOW)
            return super().query_by_out_trade_no(out_trade_no)

    wechat = CancelledMeanwhile(notice(order))
    assert service.reconcile_payments(lambda: shop.uow, wechat, now=NOW + timedelta(minutes=5)) == 0
    assert (order.status, order.paid_at) == ("CANCELLED", None)
    assert order.history[-1].reason.startswith("paid after cancellation, refunded")
    assert [(r["out_refund_no"], r["refund_fen"]) for r in wechat.refunds] == [(f"LATE{order.order_no}", 3998)]


# -- a WeChat payment after a wallet attempt that closed the order's transaction and charged nothing ------------------

class ClosingWechatPay(FakeWechatPay):
    """WeChat Pay as it treats a closed transaction: never prepaid again under its number (`code`, ORDERCLOSED as
    API v2 and some v3 pages spell it, ORDER_CLOSED as others do); unpaid."""

    def __init__(self, code: str = "ORDERCLOSED") -> None:
        super().__init__(close_error=None)
        self.code = code

    def jsapi_prepay(self, **kwargs: object) -> str:
        if kwargs["out_trade_no"] in self.closed:
            raise WechatPayApiError(400, self.code, "该订单已关单")
        return super().jsapi_prepay(**kwargs)

    def query_by_out_trade_no(self, out_trade_no: str) -> PaymentNotice:
        return PaymentNotice(out_trade_no=out_trade_no, transaction_id=None, trade_state="CLOSED",
                             amount_total_fen=3998, payer_total_fen=None, mchid="m", appid="a", success_time=None)


def pay(shop: Shop, order: Order, channel: str, wechat: FakeWechatPay) -> service.PaymentStart:
    return service.pay_order(shop.uow, shop.members, shop.users, wechat, shop.settings, user_id=1,
                             order_id=order.id or 0, channel=channel, now=NOW)


def declined_wallet_after_wechat(shop: Shop, code: str = "ORDERCLOSED") -> tuple[Order, ClosingWechatPay]:
    """An order prepaid with WeChat Pay, then tried from a wallet that declined: its transaction (the order number)
    closed by the wallet attempt, which WeChat Pay then refuses to prepay again with `code`."""
    order, wechat = submit(shop, BUY_TWO), ClosingWechatPay(code)
    pay(shop, order, "wechat", wechat)
    shop.members.balance_fen = 0
    with pytest.raises(DomainError) as declined:
        pay(shop, order, "balance", wechat)
    assert (declined.value.code, wechat.closed) == ("BALANCE_INSUFFICIENT", [order.order_no])
    return order, wechat


@pytest.mark.parametrize("code", ["ORDERCLOSED", "ORDER_CLOSED"])
def test_wechat_pay_after_a_declined_wallet_closed_the_transaction_prepays_the_orders_next_one(
        shop: Shop, code: str) -> None:
    order, wechat = declined_wallet_after_wechat(shop, code)

    started = pay(shop, order, "wechat", wechat)

    assert started.out_trade_no == f"{order.order_no}_2" == order.wechat_out_trade_no
    assert started.wx_request_payment == {"package": "prepay_id=wx-prepay-1"}
    assert [prepay["out_trade_no"] for prepay in wechat.prepaid] == [order.order_no, f"{order.order_no}_2"]
    assert (order.status, order.wechat_attempt, order.prepaid_at) == ("PENDING_PAYMENT", 2, NOW)
    assert pay(shop, order, "wechat", wechat).out_trade_no == f"{order.order_no}_2"  # tapped again: the same one


def test_the_next_transactions_notify_pays_the_order_once_and_its_refund_goes_to_that_transaction(
        shop: Shop) -> None:
    order, wechat = declined_wallet_after_wechat(shop)
    pay(shop, order, "wechat", wechat)
    paid = FakeWechatPay(replace(notice(order), out_trade_no=f"{order.order_no}_2"))

    for _ in range(2):
        service.handle_wechat_notify(shop.uow, paid, headers={}, body=b"{}", now=NOW)
    payments = FakeRefundPayments()
    service.cancel_order(shop.uow, user_id=1, order_id=order.id or 0, reason="不想要了", now=NOW)
    refunds.review_cancellation(shop.uow, payments, shop.members, order_id=order.id or 0, approve=True, reason="",
                                actor="staff:9", now=NOW)

    assert (order.pay_channel, order.out_trade_no) == ("wechat", f"{order.order_no}_2")
    assert [event.payload.out_trade_no for event in shop.uow.published if event.event_type == "order-paid"] == [
        f"{order.order_no}_2"]
    assert [(asked.out_trade_no, asked.refund_fen) for asked in payments.asked.values()] == [
        (f"{order.order_no}_2", 3998)]


def test_a_notify_of_the_closed_first_transaction_of_an_order_paid_by_the_next_is_refunded_from_that_one(
        shop: Shop) -> None:
    order, wechat = declined_wallet_after_wechat(shop)
    pay(shop, order, "wechat", wechat)
    service.handle_wechat_notify(shop.uow, FakeWechatPay(replace(notice(order), out_trade_no=f"{order.order_no}_2")),
                                 headers={}, body=b"{}", now=NOW)
    first = FakeWechatPay(notice(order))  # WeChat Pay reports a payment under the order number after all

    for _ in range(2):
        service.handle_wechat_notify(shop.uow, first, headers={}, body=b"{}", now=NOW)

    assert (order.status, order.out_trade_no) == ("PAID", f"{order.order_no}_2")
    assert [(r["out_trade_no"], r["out_refund_no"], r["refund_fen"]) for r in first.refunds] == [
        (order.order_no, f"LATE{order.order_no}", 3998)] * 2  # asked again while PENDING: one refund at WeChat Pay
    assert [event.event_type for event in shop.uow.published].count("order-paid") == 1
    assert late_money(shop) == [
        ("late-payment-received", order.order_no, "wechat", 3998, f"LATE{order.order_no}", "paid_otherwise")]


def test_a_late_payment_of_the_next_transaction_is_refunded_under_its_own_number(shop: Shop) -> None:
    order, wechat = declined_wallet_after_wechat(shop)
    pay(shop, order, "wechat", wechat)
    service.cancel_order(shop.uow, user_id=1, order_id=order.id or 0, reason="", wechat=wechat, now=NOW)
    late = FakeWechatPay(replace(notice(order), out_trade_no=f"{order.order_no}_2"))

    service.handle_wechat_notify(shop.uow, late, headers={}, body=b"{}", now=NOW)

    assert wechat.closed == [order.order_no, f"{order.order_no}_2"]  # the cancel closed the one handed out
    assert (order.status, order.paid_at) == ("CANCELLED", None)
    assert [(r["out_trade_no"], r["out_refund_no"]) for r in late.refunds] == [
        (f"{order.order_no}_2", f"LATE{order.order_no}_2")]
    assert late_money(shop) == [("late-payment-received", order.order_no, "wechat", 3998,
                                 f"LATE{order.order_no}_2", "cancelled")]


def test_a_notify_of_a_transaction_the_order_never_opened_is_rejected(shop: Shop) -> None:
    order, wechat = declined_wallet_after_wechat(shop)
    pay(shop, order, "wechat", wechat)  # the order has opened <order_no> and <order_no>_2
    never_opened = FakeWechatPay(replace(notice(order), out_trade_no=f"{order.order_no}_3"))
    with pytest.raises(NotifyRejected):
        service.handle_wechat_notify(shop.uow, never_opened, headers={}, body=b"{}", now=NOW)
    assert (order.status, len(shop.uow.published)) == ("PENDING_PAYMENT", 1)


def test_the_timeout_and_reconciliation_close_and_ask_about_the_orders_current_transaction(shop: Shop) -> None:
    order, wechat = declined_wallet_after_wechat(shop)
    pay(shop, order, "wechat", wechat)
    asked = FakeWechatPay(replace(notice(order), out_trade_no=f"{order.order_no}_2"))

    class Asked(FakeWechatPay):
        def query_by_out_trade_no(self, out_trade_no: str) -> PaymentNotice:
            asked.prepaid.append({"queried": out_trade_no})
            return replace(notice(order), out_trade_no=out_trade_no, trade_state="NOTPAY")

    assert service.reconcile_payments(lambda: shop.uow, Asked(), now=NOW + timedelta(minutes=5)) == 0
    closing = ClosingWechatPay()
    assert service.expire_orders(shop.uow, wechat=closing, now=NOW + timedelta(minutes=30)) == 1

    assert asked.prepaid == [{"queried": f"{order.order_no}_2"}]
    assert (order.status, closing.closed) == ("CANCELLED", [f"{order.order_no}_2"])


def test_no_next_transaction_is_opened_while_a_wallet_payment_is_under_way(shop: Shop) -> None:
    order, wechat = declined_wallet_after_wechat(shop)
    order.wallet_attempt_at = NOW  # another tap's wallet payment: it closed the transaction and is charging
    with pytest.raises(Conflict) as refused:
        pay(shop, order, "wechat", wechat)
    assert (refused.value.code, refused.value.details) == ("ORDER_STATE_CONFLICT", {"status": "PENDING_PAYMENT",
                                                                                     "action": "pay"})
    assert (order.wechat_attempt, [prepay["out_trade_no"] for prepay in wechat.prepaid]) == (1, [order.order_no])


def test_a_prepay_that_meets_a_wallet_payment_under_way_hands_out_no_parameters(shop: Shop) -> None:
    order = submit(shop, BUY_TWO)

    class WalletMeanwhile(FakeWechatPay):  # a wallet tap records its attempt (nothing prepaid: nothing to close)
        def jsapi_prepay(self, **kwargs: object) -> str:
            order.wallet_attempt_at = NOW
            return super().jsapi_prepay(**kwargs)

    with pytest.raises(Conflict) as refused:
        pay(shop, order, "wechat", WalletMeanwhile())
    assert (refused.value.code, order.prepaid_at) == ("ORDER_STATE_CONFLICT", None)


def test_a_wallet_payment_is_not_charged_beside_a_wechat_transaction_handed_out_after_its_close(shop: Shop) -> None:
    order, wechat = declined_wallet_after_wechat(shop)
    shop.members.balance_fen = 10000

    class PrepaidMeanwhile(ClosingWechatPay):  # another tap opens and hands out the next transaction after the close
        def query_by_out_trade_no(self, out_trade_no: str) -> PaymentNotice:
            pay(shop, order, "wechat", wechat)
            return super().query_by_out_trade_no(out_trade_no)

    with pytest.raises(Conflict) as refused:
        pay(shop, order, "balance", PrepaidMeanwhile())
    assert (refused.value.code, order.open_wechat_trade) == ("ORDER_STATE_CONFLICT", f"{order.order_no}_2")
    assert (order.status, order.wallet_attempt_at, shop.members.balance_fen) == ("PENDING_PAYMENT", None, 10000)

    assert pay(shop, order, "balance", wechat).status == "PAID"  # tried again: that one is closed first
    assert (wechat.closed[-1], shop.members.balance_fen) == (f"{order.order_no}_2", 10000 - 3998)


def test_every_wechat_transaction_number_of_an_order_is_one_wechat_pay_takes_and_the_last_is_refused(
        shop: Shop) -> None:
    order = submit(shop, BUY_TWO)
    numbers = [order.wechat_out_trade_no]
    while order.wechat_attempt < MAX_WECHAT_ATTEMPTS:
        order.next_wechat_attempt()
        numbers.append(order.wechat_out_trade_no)

    with pytest.raises(Conflict) as refused:
        order.next_wechat_attempt()
    assert (refused.value.code, order.wechat_attempt) == ("WECHATPAY_TRANSACTION_CLOSED", MAX_WECHAT_ATTEMPTS)
    assert all(re.fullmatch(r"[0-9A-Za-z_\-|*]{6,32}", number) for number in numbers)  # WeChat Pay's out_trade_no
    assert len(set(numbers)) == MAX_WECHAT_ATTEMPTS and all(map(order.has_wechat_trade, numbers))
    assert {order_no_of_trade(number) for number in numbers} == {order.order_no}
    assert not order.has_wechat_trade(f"{order.order_no}_{MAX_WECHAT_ATTEMPTS + 1}")


# -- a cancellation meeting a WeChat payment that hands out a transaction the cancel's close did not see ---------------

def test_a_cancel_whose_close_meets_the_next_transaction_handed_out_leaves_no_payable_one_on_a_cancelled_order(
        shop: Shop) -> None:
    order = submit(shop, BUY_TWO)
    wechat = paid_while_closing(ClosingWechatPay(), lambda: pay(shop, order, "wechat", wechat))
    pay(shop, order, "wechat", wechat)  # the order number handed out; the cancel closes it, the tap opens the next

    with pytest.raises(Conflict) as refused:
        service.cancel_order(shop.uow, user_id=1, order_id=order.id or 0, reason="changed my mind", wechat=wechat,
                             now=NOW)
    assert (refused.value.code, refused.value.details) == ("ORDER_STATE_CONFLICT", {"status": "PENDING_PAYMENT",
                                                                                     "action": "cancel"})
    assert (order.status, order.wechat_out_trade_no, order.prepaid_at) == ("PENDING_PAYMENT", f"{order.order_no}_2",
                                                                           NOW)
    assert wechat.closed == [order.order_no]

    service.cancel_order(shop.uow, user_id=1, order_id=order.id or 0, reason="changed my mind", wechat=wechat, now=NOW)

    assert wechat.closed == [order.order_no, f"{order.order_no}_2"]  # nothing payable is left on the cancelled order
    assert order.status == "CANCELLED"
    assert [event.event_type for event in shop.uow.published] == ["order-created", "order-cancelled"]


def test_a_cancel_meeting_the_first_prepay_handed_out_after_it_looked_closes_that_one_before_cancelling(
        shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    order, wechat = submit(shop, BUY_TWO), ClosingWechatPay()
    get = shop.uow.orders.get
    paying: list[Order] = [order]

    def locked_after_the_prepay(order_id: int, *, lock: bool = False) -> Order | None:
        if lock and paying:  # the cancel read the order unprepaid; the shopper's prepay commits before its lock
            pay(shop, paying.pop(), "wechat", wechat)
        return get(order_id, lock=lock)
    monkeypatch.setattr(shop.uow.orders, "get", locked_after_the_prepay)

    with pytest.raises(Conflict) as refused:
        service.cancel_order(shop.uow, user_id=1, order_id=order.id or 0, reason="", wechat=wechat, now=NOW)
    assert (refused.value.code, order.status, order.open_wechat_trade) == (
        "ORDER_STATE_CONFLICT", "PENDING_PAYMENT", order.order_no)
    assert wechat.closed == []

    service.cancel_order(shop.uow, user_id=1, order_id=order.id or 0, reason="", wechat=wechat, now=NOW)

    assert (order.status, wechat.closed) == ("CANCELLED", [order.order_no])
    assert [event.event_type for event in shop.uow.published] == ["order-created", "order-cancelled"]
