"""The checkout preview refuses what the catalogue says submit's reservation would, and keys its lines for the
client (cart item id, or the buy-now sku_id)."""

from __future__ import annotations

import pytest

from services.common.errors import DomainError
from services.order import service
from services.order.service import CheckoutInput, Quote
from tests.unit.order.conftest import NOW, Shop


def preview(shop: Shop, request: CheckoutInput) -> Quote:
    return service.quote_checkout(shop.uow, shop.catalog, shop.members, shop.users, shop.settings, user_id=1,
                                  request=request)


def test_a_preview_of_more_units_than_are_free_is_refused_as_submit_refuses_it_and_holds_nothing(shop: Shop) -> None:
    shop.catalog.put(101, price_fen=1999, stock_status="low", available=10)
    request = CheckoutInput(sku_id=101, quantity=11, address_id=7, coupon_id=9, points=100)

    with pytest.raises(DomainError) as previewed:
        preview(shop, request)
    with pytest.raises(DomainError) as submitted:
        service.submit_order(shop.uow, shop.members, shop.stock, shop.users, shop.settings, user_id=1,
                             request=request, note="", idempotency_key="k1", request_fingerprint=b"r", now=NOW)

    assert (previewed.value.code, previewed.value.details) == ("OUT_OF_STOCK", {"sku_id": 101})
    assert (submitted.value.code, submitted.value.details) == ("OUT_OF_STOCK", {"sku_id": 101})
    assert (shop.stock.available, shop.stock.reserved) == ({101: 10, 102: 100}, {})
    assert (shop.members.locked_coupons, shop.members.locked_points) == ({}, {})


def test_a_preview_of_exactly_the_units_free_is_quoted(shop: Shop) -> None:
    shop.catalog.put(101, price_fen=1999, stock_status="low", available=10)

    quote = preview(shop, CheckoutInput(sku_id=101, quantity=10, address_id=7))

    assert quote.amounts.items_total_fen == 19_990


def test_a_preview_of_a_cart_line_past_its_skus_free_units_names_the_sku(shop: Shop) -> None:
    first = service.add_cart_item(shop.uow, shop.catalog, user_id=1, sku_id=101, quantity=1, now=NOW).item
    second = service.add_cart_item(shop.uow, shop.catalog, user_id=1, sku_id=102, quantity=5, now=NOW).item
    shop.catalog.put(102, price_fen=500, stock_status="low", available=4)

    with pytest.raises(DomainError) as previewed:
        preview(shop, CheckoutInput(cart_item_ids=(first.id or 0, second.id or 0), address_id=7))

    assert (previewed.value.code, previewed.value.details) == ("OUT_OF_STOCK", {"sku_id": 102})


def test_a_sold_out_sku_is_refused_even_when_the_catalogue_does_not_count_its_units(shop: Shop) -> None:
    shop.catalog.put(101, price_fen=1999, stock_status="sold_out")

    with pytest.raises(DomainError) as previewed:
        preview(shop, CheckoutInput(sku_id=101, quantity=1, address_id=7))

    assert (previewed.value.code, previewed.value.details) == ("OUT_OF_STOCK", {"sku_id": 101})


def test_a_sku_whose_units_the_catalogue_does_not_count_is_quoted_and_left_to_the_reservation(shop: Shop) -> None:
    # A product service of the previous release tells no count: the preview is advisory, submit's reservation decides.
    shop.catalog.put(101, price_fen=1999, stock_status="low")

    quote = preview(shop, CheckoutInput(sku_id=101, quantity=999, address_id=7))

    assert quote.amounts.items_total_fen == 1999 * 999


def test_preview_lines_of_a_cart_carry_their_cart_item_ids(shop: Shop) -> None:
    first = service.add_cart_item(shop.uow, shop.catalog, user_id=1, sku_id=101, quantity=1, now=NOW).item
    second = service.add_cart_item(shop.uow, shop.catalog, user_id=1, sku_id=102, quantity=2, now=NOW).item

    quote = preview(shop, CheckoutInput(cart_item_ids=(second.id or 0, first.id or 0), address_id=7))

    assert [(line.id, line.sku_id) for line in quote.lines] == [(second.id, 102), (first.id, 101)]
    assert len({first.id, second.id}) == 2


def test_a_buy_now_preview_line_carries_its_sku_id(shop: Shop) -> None:
    quote = preview(shop, CheckoutInput(sku_id=102, quantity=3, address_id=7))

    assert [(line.id, line.sku_id) for line in quote.lines] == [(102, 102)]
