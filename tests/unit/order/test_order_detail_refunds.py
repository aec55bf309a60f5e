"""An order's detail lists its refunds (a late payment's too), for its shopper and staff; lists of orders do not."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from mall.order.v1 import order_pb2

from services.common.auth import Caller, caller_var
from services.common.errors import NotFound
from services.order.domain import Order, Refund
from services.order.grpc_api import OrderServicer
from tests.unit.order.conftest import NOW, Shop, paid_order

HOUR = timedelta(hours=1)


def as_caller(user_id: int, role: str = "") -> Caller:
    return Caller(user_id=user_id, roles=frozenset(filter(None, [role])), token_id="t", token="x")


@pytest.fixture
def servicer(shop: Shop) -> OrderServicer:
    return OrderServicer(lambda: shop.uow, shop.catalog, shop.stock, shop.members, shop.users, shop.settings)


@pytest.fixture
def shopper() -> Iterator[None]:
    token = caller_var.set(as_caller(1))
    yield
    caller_var.reset(token)


def refund(order: Order, refund_no: str, **fields: object) -> Refund:
    return Refund(**{"refund_no": refund_no, "order_id": order.id or 0, "reason": "客户来电,员工备注",
                     "actor": "staff:7", **fields})  # type: ignore[arg-type]


@pytest.fixture
def refunded(shop: Shop) -> Order:
    """A paid order of user 1 with two refunds, a SUCCESS one giving points back and a PENDING one of a late
    payment; between them, a refund of user 2's order."""
    order = paid_order(shop, (101, 2), key="mine")
    other = paid_order(shop, (102, 1), user_id=2, key="theirs")
    shop.uow.refunds.add(refund(order, "RF00000000000000000000abcdef01", source="cancel_unshipped",
                                status="SUCCESS", amount_fen=1999, channel="balance", points_returned=150,
                                created_at=NOW - 3 * HOUR, updated_at=NOW - 2 * HOUR))
    shop.uow.refunds.add(refund(other, "RF00000000000000000000abcdef02", source="cancel", status="SUCCESS",
                                amount_fen=500, channel="balance", created_at=NOW - 2 * HOUR,
                                updated_at=NOW - 2 * HOUR))
    shop.uow.refunds.add(refund(order, "LATE" + order.order_no, source="late_payment", status="PENDING",
                                amount_fen=3998, channel="wechat", created_at=NOW - HOUR, updated_at=NOW - HOUR))
    return order


def at(delta: timedelta) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(NOW - delta)
    return stamp


EXPECTED = [
    order_pb2.OrderRefund(refund_no="RF00000000000000000000abcdef01", amount_fen=1999, points_returned=150,
                          status="SUCCESS", channel="balance", source="cancel_unshipped", created_at=at(3 * HOUR),
                          updated_at=at(2 * HOUR)),
    order_pb2.OrderRefund(amount_fen=3998, points_returned=0, status="PENDING", channel="wechat",
                          source="late_payment", created_at=at(HOUR), updated_at=at(HOUR)),
]


def expected(order: Order) -> list[order_pb2.OrderRefund]:
    found = [order_pb2.OrderRefund(), order_pb2.OrderRefund()]
    for message, model in zip(found, EXPECTED, strict=True):
        message.CopyFrom(model)
    found[1].refund_no = "LATE" + order.order_no
    return found


def test_a_shoppers_order_detail_lists_its_refunds_oldest_first_a_late_payments_too(
        shop: Shop, servicer: OrderServicer, refunded: Order, shopper: None) -> None:
    message = servicer.GetOrder(order_pb2.GetOrderRequest(id=refunded.id or 0), None)  # type: ignore[arg-type]

    assert list(message.refunds) == expected(refunded)


def test_staff_see_the_same_refunds_of_any_order(shop: Shop, servicer: OrderServicer, refunded: Order) -> None:
    token = caller_var.set(as_caller(8, "customer_service"))
    try:
        message = servicer.GetOrder(order_pb2.GetOrderRequest(id=refunded.id or 0), None)  # type: ignore[arg-type]
    finally:
        caller_var.reset(token)

    assert list(message.refunds) == expected(refunded)


def test_no_staff_reason_or_actor_of_a_refund_reaches_the_order(
        shop: Shop, servicer: OrderServicer, refunded: Order, shopper: None) -> None:
    message = servicer.GetOrder(order_pb2.GetOrderRequest(id=refunded.id or 0), None)  # type: ignore[arg-type]

    assert [word for word in ("员工备注", "staff:7") if word in str(message.refunds)] == []


def test_another_shoppers_order_is_still_not_found(
        shop: Shop, servicer: OrderServicer, refunded: Order, shopper: None) -> None:
    theirs = shop.uow.orders.orders[1]

    with pytest.raises(NotFound):
        servicer.GetOrder(order_pb2.GetOrderRequest(id=theirs.id or 0), None)  # type: ignore[arg-type]


def test_lists_of_orders_carry_no_refunds(shop: Shop, servicer: OrderServicer, refunded: Order,
                                          shopper: None) -> None:
    mine = servicer.ListOrders(order_pb2.ListOrdersRequest(limit=10), None)  # type: ignore[arg-type]

    assert [(order.id, len(order.refunds)) for order in mine.orders] == [(refunded.id, 0)]


def test_the_order_detail_says_when_wechat_pay_paid_a_refund_closed_here(
        shop: Shop, servicer: OrderServicer, refunded: Order) -> None:
    shop.uow.refunds.add(refund(refunded, "RF00000000000000000000abcdef03", source="after_sale:12", status="CLOSED",
                                amount_fen=700, channel="wechat", created_at=NOW - HOUR, updated_at=NOW - HOUR,
                                paid_after_close_at=NOW - HOUR / 2))
    token = caller_var.set(as_caller(8, "customer_service"))
    try:
        message = servicer.GetOrder(order_pb2.GetOrderRequest(id=refunded.id or 0), None)  # type: ignore[arg-type]
    finally:
        caller_var.reset(token)

    assert [(refund.refund_no[-2:], refund.paid_after_close_at == at(HOUR / 2))
            for refund in message.refunds if refund.HasField("paid_after_close_at")] == [("03", True)]
