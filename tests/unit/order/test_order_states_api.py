"""GetOrderStates, the product and member services' question about the orders they hold stock, coupons or points for:
one page at most."""

from __future__ import annotations

import pytest
from mall.order.v1 import order_pb2

from services.common.auth import Caller, caller_var
from services.common.errors import InvalidInput
from services.order.grpc_api import MAX_ORDER_STATES, OrderServicer
from tests.unit.order.conftest import Shop

PRODUCT_SERVICE = Caller(user_id=0, roles=frozenset({"service"}), token_id="t", service="product")


def ask(shop: Shop, order_nos: list[str]) -> order_pb2.GetOrderStatesResponse:
    servicer = OrderServicer(lambda: shop.uow, shop.catalog, shop.stock, shop.members, shop.users, shop.settings)
    token = caller_var.set(PRODUCT_SERVICE)
    try:
        return servicer.GetOrderStates(order_pb2.GetOrderStatesRequest(order_nos=order_nos),
                                       None)  # type: ignore[arg-type]
    finally:
        caller_var.reset(token)


def test_asking_for_more_orders_than_one_page_is_refused_too_many_orders(shop: Shop) -> None:
    with pytest.raises(InvalidInput) as refused:
        ask(shop, [f"O{n}" for n in range(MAX_ORDER_STATES + 1)])

    assert (refused.value.code, refused.value.details) == ("TOO_MANY_ORDERS", {"order_nos": f"max {MAX_ORDER_STATES}"})


def test_a_full_page_of_orders_is_answered(shop: Shop) -> None:
    answer = ask(shop, [f"O{n}" for n in range(MAX_ORDER_STATES)])

    assert list(answer.orders) == []  # none of them placed here
