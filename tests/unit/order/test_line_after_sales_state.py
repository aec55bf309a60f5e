"""Each order line says how many of its units were refunded and which after-sales case of it is still open, in the
shopper's list, detail and the answers of their actions: what a line's buttons need, without reading the cases."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from mall.order.v1 import order_pb2

from services.common.auth import Caller, caller_var
from services.order import aftersales, service
from services.order.grpc_api import OrderServicer
from tests.unit.order.conftest import NOW, Shop, paid_order
from tests.unit.order.test_aftersales import ask, delivered

CONTEXT: Any = None  # the servicer does not read it


@pytest.fixture
def servicer(shop: Shop) -> Iterator[OrderServicer]:
    token = caller_var.set(Caller(user_id=1, roles=frozenset(), token_id="t"))
    yield OrderServicer(lambda: shop.uow, shop.catalog, shop.stock, shop.members, shop.users, shop.settings)
    caller_var.reset(token)


def lines(order: order_pb2.Order) -> list[tuple[int, int, int]]:
    """(quantity, refunded_quantity, open_case_id) of each line."""
    return [(line.quantity, line.refunded_quantity, line.open_case_id) for line in order.lines]


def test_a_line_of_two_units_one_refunded_reads_one_refunded_in_my_list_and_detail(shop: Shop,
                                                                                  servicer: OrderServicer) -> None:
    order = delivered(shop, (101, 2), (102, 3))
    case = ask(shop, order, {order.lines[0].id or 0: 1})
    done = aftersales.decide(lambda: shop.uow, aftersales.EngineRefunder(None, shop.members), case_id=case.id or 0,
                             approve=True, reason="ok", actor="staff:8", now=NOW + timedelta(days=4))

    listed = servicer.ListOrders(order_pb2.ListOrdersRequest(), CONTEXT)
    detail = servicer.GetOrder(order_pb2.GetOrderRequest(id=order.id), CONTEXT)

    assert done.status == "REFUNDED"  # closed: no case open on the line any more
    assert lines(listed.orders[0]) == lines(detail) == [(2, 1, 0), (3, 0, 0)]


def test_an_open_case_shows_on_its_line_until_it_is_withdrawn(shop: Shop, servicer: OrderServicer) -> None:
    order = delivered(shop, (101, 2), (102, 3))
    case = ask(shop, order, {order.lines[1].id or 0: 2})

    while_open = servicer.GetOrder(order_pb2.GetOrderRequest(id=order.id), CONTEXT)
    listed_open = servicer.ListOrders(order_pb2.ListOrdersRequest(), CONTEXT).orders[0]
    aftersales.withdraw_case(shop.uow, user_id=1, case_id=case.id or 0, now=NOW + timedelta(days=4))
    closed = servicer.GetOrder(order_pb2.GetOrderRequest(id=order.id), CONTEXT)
    listed_closed = servicer.ListOrders(order_pb2.ListOrdersRequest(), CONTEXT).orders[0]

    assert lines(while_open) == lines(listed_open) == [(2, 0, 0), (3, 0, case.id)]
    assert lines(closed) == lines(listed_closed) == [(2, 0, 0), (3, 0, 0)]


def test_confirming_receipt_answers_the_case_still_open_on_a_line(shop: Shop, servicer: OrderServicer) -> None:
    order = paid_order(shop, (101, 2))
    service.ship_order(shop.uow, order_id=order.id or 0, carrier="SF", tracking_no="S1", lines=None, actor="staff:7",
                       now=NOW)
    case = ask(shop, order, {order.lines[0].id or 0: 1}, now=NOW + timedelta(days=1))

    confirmed = servicer.ConfirmReceipt(order_pb2.ConfirmReceiptRequest(id=order.id), CONTEXT)

    assert (confirmed.status, lines(confirmed)) == ("COMPLETED", [(2, 0, case.id)])
