"""A product's purchase limit (限购) on fakes: one shopper never paying cannot hold a flash sale's stock across unpaid
orders; the limit counts the shopper's orders that hold or took units, submit and preview refuse alike, 0 = none."""

from __future__ import annotations

import pytest
from mall.order.v1 import order_pb2

from services.common.auth import Caller, caller_var
from services.common.errors import DomainError, ErrorKind
from services.order import service
from services.order.domain import Order
from services.order.grpc_api import OrderServicer
from services.order.service import CheckoutInput, OrderSettings
from tests.unit.order.conftest import NOW, Shop

FLASH, OTHER_SPEC = 201, 202  # two SKUs of the flash sale's product
PRODUCT = 20
LIMIT = 3


@pytest.fixture
def flash(shop: Shop) -> Shop:
    shop.settings = OrderSettings(pay_minutes=30, max_unpaid_orders=5)
    for sku_id in (FLASH, OTHER_SPEC):
        shop.catalog.put(sku_id, product_id=PRODUCT, price_fen=990, max_per_shopper=LIMIT)
    shop.stock.available.update({FLASH: 10, OTHER_SPEC: 10})
    return shop


def buy(shop: Shop, key: str, quantity: int, *, sku_id: int = FLASH, user_id: int = 1) -> Order:
    request = CheckoutInput(sku_id=sku_id, quantity=quantity, address_id=7 + user_id - 1)
    return service.submit_order(shop.uow, shop.members, shop.stock, shop.users, shop.settings, user_id=user_id,
                                request=request, note="", idempotency_key=key,
                                request_fingerprint=repr(request).encode(), now=NOW)


def set_limit(shop: Shop, max_per_shopper: int) -> None:
    """Staff set the product's limit (0: none): the catalogue answers it on each of its SKUs."""
    for sku_id in (FLASH, OTHER_SPEC):
        shop.catalog.put(sku_id, product_id=PRODUCT, price_fen=990, max_per_shopper=max_per_shopper)


def add(shop: Shop, sku_id: int, quantity: int) -> service.CartLine:
    return service.add_cart_item(shop.uow, shop.catalog, user_id=1, sku_id=sku_id, quantity=quantity, now=NOW)


def change(shop: Shop, line: service.CartLine, quantity: int = 0, selected: bool | None = None) -> service.CartLine:
    return service.change_cart_item(shop.uow, shop.catalog, user_id=1, item_id=line.item.id or 0, quantity=quantity,
                                    selected=selected)


def in_cart(shop: Shop) -> list[tuple[int, int]]:
    """The shopper's cart lines as (sku_id, quantity)."""
    return [(item.sku_id, item.quantity) for item in shop.uow.carts.for_user(1)]


def refusal(shop: Shop, key: str, quantity: int, *, user_id: int = 1) -> DomainError:
    with pytest.raises(DomainError) as refused:
        buy(shop, key, quantity, user_id=user_id)
    return refused.value


def test_a_shopper_holding_the_limit_in_unpaid_orders_is_refused_more_and_another_shopper_buys(flash: Shop) -> None:
    first, second = buy(flash, "a", 2), buy(flash, "b", 1)  # 3 units in 2 unpaid orders: the limit

    refused = refusal(flash, "c", 1)
    theirs = buy(flash, "d", 3, user_id=2)

    assert (refused.code, refused.kind, refused.details) == (
        "PURCHASE_LIMIT_EXCEEDED", ErrorKind.BUSINESS_RULE,
        {"product_id": PRODUCT, "max_per_shopper": LIMIT, "already": 3, "requested": 1})
    assert (first.status, second.status, theirs.status) == ("PENDING_PAYMENT",) * 3
    assert len(flash.stock.released) == 1  # the refused submit's units, held a moment, are given back
    assert (flash.stock.available[FLASH], len(flash.uow.orders.orders)) == (10 - 3 - 3, 3)


def test_one_order_over_the_limit_is_refused_and_holds_nothing(flash: Shop) -> None:
    refused = refusal(flash, "a", LIMIT + 1)

    assert (refused.code, refused.details["already"], refused.details["requested"]) == ("PURCHASE_LIMIT_EXCEEDED", 0, 4)
    assert (flash.stock.available[FLASH], flash.uow.orders.orders, flash.stock.reserved) == (10, [], {})


def test_every_spec_of_the_product_counts_toward_its_limit(flash: Shop) -> None:
    buy(flash, "a", 2, sku_id=OTHER_SPEC)

    with pytest.raises(DomainError) as refused:
        buy(flash, "b", 2)

    assert refused.value.details == {"product_id": PRODUCT, "max_per_shopper": LIMIT, "already": 2, "requested": 2}


def test_cart_lines_of_one_product_are_added_up(flash: Shop) -> None:
    set_limit(flash, 0)
    ids = tuple(add(flash, sku_id, 2).item.id or 0 for sku_id in (FLASH, OTHER_SPEC))
    set_limit(flash, LIMIT)  # after the lines were put in the cart, which took them
    request = CheckoutInput(cart_item_ids=ids, address_id=7)

    with pytest.raises(DomainError) as refused:
        service.submit_order(flash.uow, flash.members, flash.stock, flash.users, flash.settings, user_id=1,
                             request=request, note="", idempotency_key="cart",
                             request_fingerprint=repr(request).encode(), now=NOW)

    assert (refused.value.code, refused.value.details["requested"]) == ("PURCHASE_LIMIT_EXCEEDED", 4)
    assert len(flash.uow.carts.for_user(1)) == 2  # the cart is as it was


def test_paid_orders_count_and_cancelled_ones_do_not(flash: Shop) -> None:
    paid = buy(flash, "a", 2)
    service.mark_paid(flash.uow, order_no=paid.order_no, channel="balance", out_trade_no=paid.order_no,
                      paid_fen=paid.payable_fen, actor="user:1", now=NOW)
    unpaid = buy(flash, "b", 1)
    assert refusal(flash, "c", 1).details["already"] == 3

    service.cancel_order(flash.uow, user_id=1, order_id=unpaid.id or 0, reason="changed my mind", now=NOW)
    again = buy(flash, "d", 1)

    assert again.status == "PENDING_PAYMENT"
    assert refusal(flash, "e", 1).details["already"] == 3


def test_other_products_are_not_limited_by_it(flash: Shop) -> None:
    buy(flash, "a", LIMIT)

    other = buy(flash, "b", 50, sku_id=102)

    assert other.lines[0].quantity == 50


def test_a_limit_of_0_leaves_checkout_as_it_was(flash: Shop) -> None:
    for sku_id in (FLASH, OTHER_SPEC):
        flash.catalog.put(sku_id, product_id=PRODUCT, price_fen=990, max_per_shopper=0)

    orders = [buy(flash, "a", 6), buy(flash, "b", 4)]

    assert ([order.lines[0].quantity for order in orders], flash.stock.available[FLASH]) == ([6, 4], 0)


def test_preview_refuses_as_submit_does(flash: Shop) -> None:
    buy(flash, "a", 2)

    with pytest.raises(DomainError) as refused:
        service.quote_checkout(flash.uow, flash.catalog, flash.members, flash.users, flash.settings, user_id=1,
                               request=CheckoutInput(sku_id=FLASH, quantity=2, address_id=7))
    quote = service.quote_checkout(flash.uow, flash.catalog, flash.members, flash.users, flash.settings, user_id=1,
                                   request=CheckoutInput(sku_id=FLASH, quantity=1, address_id=7))

    assert (refused.value.code, refused.value.details) == (
        "PURCHASE_LIMIT_EXCEEDED", {"product_id": PRODUCT, "max_per_shopper": LIMIT, "already": 2, "requested": 2})
    assert quote.lines[0].quantity == 1


def test_the_cart_shows_each_lines_purchase_limit_and_0_where_there_is_none(flash: Shop) -> None:
    flash.catalog.put(301, product_id=30, price_fen=500)  # no limit
    for sku_id in (FLASH, 301):
        service.add_cart_item(flash.uow, flash.catalog, user_id=1, sku_id=sku_id, quantity=1, now=NOW)
    servicer = OrderServicer(lambda: flash.uow, flash.catalog, flash.stock, flash.members, flash.users, flash.settings)
    token = caller_var.set(Caller(user_id=1, roles=frozenset(), token_id="t", token="x"))
    try:
        cart = servicer.ListCart(order_pb2.ListCartRequest(), None)  # type: ignore[arg-type]
    finally:
        caller_var.reset(token)

    assert [(item.sku_id, item.max_per_shopper) for item in cart.items] == [(FLASH, LIMIT), (301, 0)]


# -- the cart refuses what checkout would ------------------------------------------------------------------------------

def test_adding_to_a_line_up_to_the_limit_is_taken_and_past_it_refused_with_the_numbers(flash: Shop) -> None:
    add(flash, FLASH, 1)
    merged = add(flash, FLASH, 2)  # 3: the limit
    added = len(flash.uow.published)

    with pytest.raises(DomainError) as refused:
        add(flash, FLASH, 1)

    assert merged.item.quantity == 3
    assert (refused.value.code, refused.value.kind, refused.value.details) == (
        "PURCHASE_LIMIT_EXCEEDED", ErrorKind.BUSINESS_RULE,
        {"product_id": PRODUCT, "max_per_shopper": LIMIT, "already": 0, "requested": 4})
    assert (in_cart(flash), len(flash.uow.published)) == ([(FLASH, 3)], added)  # no line changed, no event


def test_every_spec_of_the_product_in_the_cart_counts_when_adding(flash: Shop) -> None:
    add(flash, FLASH, 2)

    with pytest.raises(DomainError) as refused:
        add(flash, OTHER_SPEC, 2)
    taken = add(flash, OTHER_SPEC, 1)

    assert refused.value.details == {"product_id": PRODUCT, "max_per_shopper": LIMIT, "already": 0, "requested": 4}
    assert (taken.item.quantity, in_cart(flash)) == (1, [(FLASH, 2), (OTHER_SPEC, 1)])


def test_units_in_the_shoppers_orders_count_when_adding(flash: Shop) -> None:
    buy(flash, "a", 2)

    with pytest.raises(DomainError) as refused:
        add(flash, OTHER_SPEC, 2)
    taken = add(flash, OTHER_SPEC, 1)

    assert refused.value.details == {"product_id": PRODUCT, "max_per_shopper": LIMIT, "already": 2, "requested": 2}
    assert (taken.item.quantity, in_cart(flash)) == (1, [(OTHER_SPEC, 1)])


def test_raising_a_line_past_the_limit_is_refused_and_leaves_the_line_as_it_was(flash: Shop) -> None:
    line = add(flash, FLASH, 1)
    add(flash, OTHER_SPEC, 1)

    with pytest.raises(DomainError) as refused:
        change(flash, line, 3, selected=False)  # 3 of this spec and 1 of the other
    raised = change(flash, line, 2)

    assert refused.value.details == {"product_id": PRODUCT, "max_per_shopper": LIMIT, "already": 0, "requested": 4}
    assert (raised.item.quantity, raised.item.selected, raised.sku) == (2, True, flash.catalog.skus_by_id[FLASH])
    assert in_cart(flash) == [(FLASH, 2), (OTHER_SPEC, 1)]


def test_units_in_the_shoppers_orders_count_when_raising_a_line(flash: Shop) -> None:
    line = add(flash, FLASH, 1)
    buy(flash, "a", 2, sku_id=OTHER_SPEC)

    with pytest.raises(DomainError) as refused:
        change(flash, line, 2)

    assert refused.value.details == {"product_id": PRODUCT, "max_per_shopper": LIMIT, "already": 2, "requested": 2}
    assert in_cart(flash) == [(FLASH, 1)]


def test_a_line_over_a_limit_set_after_it_was_added_can_be_lowered_and_unselected_but_not_raised(flash: Shop) -> None:
    set_limit(flash, 0)
    line = add(flash, FLASH, 6)
    set_limit(flash, LIMIT)

    lowered = change(flash, line, 5)  # still over the limit: fewer units are always taken
    unselected = change(flash, line, selected=False)
    with pytest.raises(DomainError) as refused:
        change(flash, line, 6)

    assert (lowered.item.quantity, unselected.item.selected) == (5, False)
    assert refused.value.details == {"product_id": PRODUCT, "max_per_shopper": LIMIT, "already": 0, "requested": 6}
    assert in_cart(flash) == [(FLASH, 5)]


def test_a_limit_of_0_leaves_the_cart_as_it_was(flash: Shop) -> None:
    set_limit(flash, 0)

    line = add(flash, FLASH, 40)
    add(flash, OTHER_SPEC, 10)
    raised = change(flash, line, 50)

    assert (raised.item.quantity, in_cart(flash)) == (50, [(FLASH, 50), (OTHER_SPEC, 10)])
