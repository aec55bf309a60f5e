"""Shipping, receipt and the auto-confirm scheduler on the order service's databases (O3)."""

from __future__ import annotations

import concurrent.futures
import functools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from mall.order.v1 import order_pb2

from services.order import service
from services.order.db import SqlOrderUnitOfWork
from services.order.service import OrderSettings
from tests.integration.order.conftest import OrderServer
from tests.integration.order.test_order_grpc import ALICE, BOB, failure, place, submit

pytestmark = pytest.mark.integration


def paid(uow: Callable[[], SqlOrderUnitOfWork], order_no: str, now: datetime) -> int:
    order = place(uow, order_no, now)
    service.mark_paid(uow(), order_no=order_no, channel="balance", out_trade_no=order_no, paid_fen=order.payable_fen,
                      actor="test", now=now)
    return order.id or 0


def test_parcels_round_trip_and_the_last_one_ships_the_order(server: OrderServer) -> None:
    server.members.balance_fen = 10_000
    order = submit(server, checkout=order_pb2.CheckoutRequest(sku_id=101, quantity=3, address_id=7))
    server.stub.PayOrder(order_pb2.PayOrderRequest(id=order.id, channel="balance"), metadata=server.as_user(ALICE))
    line = order.lines[0].id
    ship = functools.partial(server.stub.ShipOrder, metadata=server.as_user(9, "operator"))
    part = ship(order_pb2.ShipOrderRequest(id=order.id, carrier="SF", tracking_no="SF1",
                                           lines=[order_pb2.ShipmentLine(line_id=line, quantity=1)]))
    assert (part.status, part.HasField("shipped_at"), server.events("order-shipped")) == ("PAID", False, 0)
    assert failure(lambda: ship(order_pb2.ShipOrderRequest(id=order.id, carrier="SF", tracking_no="SF1"))) == (
        grpc.StatusCode.ABORTED, "SHIPMENT_DUPLICATE")
    assert failure(lambda: server.stub.ShipOrder(order_pb2.ShipOrderRequest(id=order.id, carrier="SF", tracking_no="X"),
                                                 metadata=server.as_user(9, "customer_service"))) == (
        grpc.StatusCode.PERMISSION_DENIED, "FORBIDDEN")
    whole = ship(order_pb2.ShipOrderRequest(id=order.id, carrier="ZTO", tracking_no="Z2"))
    assert whole.status == "SHIPPED" and whole.HasField("shipped_at")
    assert [(s.carrier, s.tracking_no, [(i.line_id, i.quantity) for i in s.lines]) for s in whole.shipments] == [
        ("SF", "SF1", [(line, 1)]), ("ZTO", "Z2", [(line, 2)])]
    assert failure(lambda: server.stub.ConfirmReceipt(order_pb2.ConfirmReceiptRequest(id=order.id),
                                                      metadata=server.as_user(BOB))) == (
        grpc.StatusCode.NOT_FOUND, "ORDER_NOT_FOUND")
    done = server.stub.ConfirmReceipt(order_pb2.ConfirmReceiptRequest(id=order.id), metadata=server.as_user(ALICE))
    assert done.status == "COMPLETED" and done.HasField("completed_at")
    read = server.stub.GetOrder(order_pb2.GetOrderRequest(id=order.id), metadata=server.as_user(ALICE))
    assert [step.status for step in read.history] == ["PENDING_PAYMENT", "PAID", "PAID", "SHIPPED", "COMPLETED"]
    assert (server.events("order-shipped"), server.events("order-completed")) == (1, 1)


def test_the_waybill_carries_the_full_phone_and_the_units_left_until_nothing_is_left_to_ship(
        server: OrderServer) -> None:
    server.members.balance_fen = 10_000
    order = submit(server, checkout=order_pb2.CheckoutRequest(sku_id=101, quantity=3, address_id=7))
    server.stub.PayOrder(order_pb2.PayOrderRequest(id=order.id, channel="balance"), metadata=server.as_user(ALICE))
    line, operator = order.lines[0].id, server.as_user(9, "operator")
    ship = functools.partial(server.stub.ShipOrder, metadata=operator)
    waybill = functools.partial(server.stub.GetWaybill, order_pb2.GetWaybillRequest(id=order.id))
    ship(order_pb2.ShipOrderRequest(id=order.id, carrier="SF", tracking_no="SF1",
                                    lines=[order_pb2.ShipmentLine(line_id=line, quantity=1)]))

    label = waybill(metadata=operator)

    assert (label.order_no, label.receiver.phone, [(item.line_id, item.quantity, item.to_ship) for item in label.lines]
            ) == (order.order_no, "13800138000", [(line, 3, 2)])
    assert failure(lambda: waybill(metadata=server.as_user(9, "finance"))) == (
        grpc.StatusCode.PERMISSION_DENIED, "FORBIDDEN")
    ship(order_pb2.ShipOrderRequest(id=order.id, carrier="ZTO", tracking_no="Z2"))
    assert failure(lambda: waybill(metadata=operator)) == (grpc.StatusCode.ABORTED, "ORDER_STATE_CONFLICT")


def test_shipments_and_times_round_trip(uow: Callable[[], SqlOrderUnitOfWork]) -> None:
    now = datetime(2026, 12, 1, 8, tzinfo=UTC)
    order_id = paid(uow, "F-1", now)
    service.ship_order(uow(), order_id=order_id, carrier="SF", tracking_no="T1", lines=None, actor="staff:7", now=now)
    service.confirm_receipt(uow(), user_id=ALICE, order_id=order_id, now=now + timedelta(days=2))
    read = service.get_order(uow(), user_id=ALICE, order_id=order_id)
    assert (read.status, read.shipped_at, read.completed_at) == ("COMPLETED", now, now + timedelta(days=2))
    assert [(s.shipment_no, s.tracking_no, s.shipped_at, [i.quantity for i in s.lines]) for s in read.shipments] == [
        ("F-1-1", "T1", now, [1])]


def test_two_auto_confirm_schedulers_at_once_complete_each_due_order_exactly_once(
        pg_uow: Callable[[], SqlOrderUnitOfWork], pg_engine: object) -> None:
    now = datetime.now(UTC)
    settings = OrderSettings(auto_confirm_days=10)
    for number in range(25):
        order_id = paid(pg_uow, f"A-{number}", now - timedelta(days=11))
        service.ship_order(pg_uow(), order_id=order_id, carrier="SF", tracking_no=f"S{number}", lines=None,
                           actor="staff:7", now=now - timedelta(days=10, seconds=number))
    fresh = paid(pg_uow, "A-fresh", now)
    service.ship_order(pg_uow(), order_id=fresh, carrier="SF", tracking_no="F", lines=None, actor="staff:7", now=now)
    confirm = functools.partial(service.auto_confirm_orders, settings=settings, now=now, batch=4)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        confirmed = sum(pool.map(lambda _: sum(iter(lambda: confirm(pg_uow()), 0)), range(4)))
    assert confirmed == 25
    page = service.search_orders(pg_uow(), service.OrderSearch(statuses=("COMPLETED",), limit=100))
    found, total = page.orders, page.total
    assert total == 25 and all(order.history[-1].actor == "system:auto-confirm" for order in found)
    assert service.search_orders(pg_uow(), service.OrderSearch(statuses=("SHIPPED",))).total == 1
