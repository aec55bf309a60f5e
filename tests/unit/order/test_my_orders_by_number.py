"""A shopper finds one of their orders by its number (as their reviews name it), and never another shopper's."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from mall.order.v1 import order_pb2

from services.common.auth import Caller, caller_var
from services.order.domain import Order
from services.order.grpc_api import OrderServicer
from tests.unit.order.conftest import Shop, paid_order


@pytest.fixture
def servicer(shop: Shop) -> OrderServicer:
    return OrderServicer(lambda: shop.uow, shop.catalog, shop.stock, shop.members, shop.users, shop.settings)


@pytest.fixture
def shopper() -> Iterator[None]:
    token = caller_var.set(Caller(user_id=1, roles=frozenset(), token_id="t", token="x"))
    yield
    caller_var.reset(token)


@pytest.fixture
def orders(shop: Shop) -> tuple[Order, Order, Order]:
    """Two orders of user 1 and one of user 2."""
    return (paid_order(shop, (101, 1), key="first"), paid_order(shop, (101, 2), key="second"),
            paid_order(shop, (102, 1), user_id=2, key="theirs"))


def my_orders(servicer: OrderServicer, order_no: str) -> tuple[list[str], int]:
    found = servicer.ListOrders(order_pb2.ListOrdersRequest(order_no=order_no, limit=10), None)  # type: ignore[arg-type]
    return [order.order_no for order in found.orders], found.total


def test_my_order_number_finds_that_order_alone(servicer: OrderServicer, orders: tuple[Order, Order, Order],
                                                 shopper: None) -> None:
    assert my_orders(servicer, orders[1].order_no) == ([orders[1].order_no], 1)


def test_another_shoppers_order_number_finds_nothing(servicer: OrderServicer, orders: tuple[Order, Order, Order],
                                                     shopper: None) -> None:
    assert my_orders(servicer, orders[2].order_no) == ([], 0)


def test_no_order_number_lists_all_my_orders(servicer: OrderServicer, orders: tuple[Order, Order, Order],
                                             shopper: None) -> None:
    assert my_orders(servicer, "") == ([orders[1].order_no, orders[0].order_no], 2)
