"""Shipping (whole or in parcels), receipt confirmed by the shopper or automatically (O3)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from mall.order.v1 import order_pb2

from services.common.auth import Caller, caller_var
from services.common.errors import Conflict, InvalidInput, NotFound
from services.order import service
from services.order.grpc_api import OrderServicer
from tests.unit.order.conftest import NOW, Shop, paid_order

LATER = NOW + timedelta(hours=2)


def events(shop: Shop, event_type: str) -> list:
    return [event.payload for event in shop.uow.published if event.event_type == event_type]


def test_shipping_every_unit_makes_the_order_shipped_with_one_order_shipped_event(shop: Shop) -> None:
    order = paid_order(shop, (101, 2), (102, 3))
    shipped = service.ship_order(shop.uow, order_id=order.id, carrier="SF", tracking_no="SF100", lines=None,
                                 actor="staff:7", now=LATER)
    assert (shipped.status, shipped.shipped_at) == ("SHIPPED", LATER)
    [parcel] = shipped.shipments
    assert [(item.line_id, item.quantity) for item in parcel.lines] == [(line.id, line.quantity)
                                                                        for line in order.lines]
    [event] = events(shop, "order-shipped")
    assert (event.order_no, event.shipment.carrier, event.shipment.tracking_no) == (order.order_no, "SF", "SF100")
    assert [(line.sku_id, line.quantity) for line in event.shipment.lines] == [(101, 2), (102, 3)]
    assert (shipped.history[-1].status, shipped.history[-1].actor, shipped.history[-1].reason) == (
        "SHIPPED", "staff:7", "SF SF100")


def test_a_partial_shipment_leaves_the_order_paid_with_its_parcel_until_the_rest_ships(shop: Shop) -> None:
    order = paid_order(shop, (101, 2), (102, 3))
    first, second = (line.id for line in order.lines)
    part = service.ship_order(shop.uow, order_id=order.id, carrier="SF", tracking_no="A1", lines={first: 2, second: 1},
                              actor="staff:7", now=LATER)
    assert (part.status, part.shipped_at, part.unshipped()) == ("PAID", None, {second: 2})
    assert part.history[-1].reason == "partly shipped: SF A1" and events(shop, "order-shipped") == []
    with pytest.raises(Conflict) as too_many:
        service.ship_order(shop.uow, order_id=order.id, carrier="SF", tracking_no="A2", lines={second: 3},
                           actor="staff:7", now=LATER)
    assert (too_many.value.code, too_many.value.details) == ("SHIP_QUANTITY_INVALID", {"unshipped": {str(second): 2}})
    with pytest.raises(Conflict) as again:
        service.ship_order(shop.uow, order_id=order.id, carrier="SF", tracking_no="A1", lines=None, actor="staff:7",
                           now=LATER)
    assert again.value.code == "SHIPMENT_DUPLICATE"
    with pytest.raises(Conflict) as cancel:  # part of it is on its way: after-sales, not a cancellation
        service.cancel_order(shop.uow, user_id=1, order_id=order.id, reason="changed my mind", now=LATER)
    assert cancel.value.details == {"status": "PAID", "action": "request_cancel"}
    rest = service.ship_order(shop.uow, order_id=order.id, carrier="ZTO", tracking_no="Z9", lines=None,
                              actor="staff:7", now=LATER + timedelta(hours=1))
    assert (rest.status, rest.shipped_at, len(rest.shipments)) == ("SHIPPED", LATER + timedelta(hours=1), 2)
    [event] = events(shop, "order-shipped")
    assert (event.shipment.shipment_no, [line.quantity for line in event.shipment.lines]) == (
        f"{order.order_no}-2", [2])


def test_only_a_paid_order_ships_and_lines_must_be_its_own(shop: Shop) -> None:
    order = paid_order(shop, (101, 1))
    with pytest.raises(InvalidInput) as foreign:
        service.ship_order(shop.uow, order_id=order.id, carrier="SF", tracking_no="X", lines={999: 1}, actor="staff:7")
    assert foreign.value.details == {"lines": [999]}
    service.ship_order(shop.uow, order_id=order.id, carrier="SF", tracking_no="X", lines=None, actor="staff:7")
    with pytest.raises(Conflict) as twice:
        service.ship_order(shop.uow, order_id=order.id, carrier="SF", tracking_no="Y", lines=None, actor="staff:7")
    assert twice.value.details == {"status": "SHIPPED", "action": "ship"}
    with pytest.raises(NotFound):
        service.ship_order(shop.uow, order_id=404, carrier="SF", tracking_no="Y", lines=None, actor="staff:7")


@pytest.mark.parametrize(("carrier", "tracking_no"), [
    ("SF", "-"), ("SF", "---"), ("SF", "-SF100"), ("SF", "SF 100"), ("SF", "顺丰100"),
    ("SF", "S" * 65), ("S" * 33, "SF100"), ("  ", "SF100")])
def test_a_parcel_whose_tracking_number_is_no_tracking_number_is_refused_and_nothing_ships(
        shop: Shop, carrier: str, tracking_no: str) -> None:
    # It would make the order SHIPPED and start its auto-confirm clock on a parcel nobody can trace; one cut to fit
    # would name another parcel.
    order = paid_order(shop, (101, 1))
    published = len(shop.uow.published)

    with pytest.raises(InvalidInput) as refused:
        service.ship_order(shop.uow, order_id=order.id, carrier=carrier, tracking_no=tracking_no, lines=None,
                           actor="staff:7", now=LATER)

    assert refused.value.code == "SHIPMENT_INVALID"
    assert (order.status, order.shipments, order.shipped_at, len(shop.uow.published)) == ("PAID", [], None, published)


def test_the_shopper_confirms_receipt_once_and_order_completed_names_each_line(shop: Shop) -> None:
    order = paid_order(shop, (101, 2), (102, 3))
    with pytest.raises(Conflict) as early:
        service.confirm_receipt(shop.uow, user_id=1, order_id=order.id, now=LATER)
    assert early.value.details == {"status": "PAID", "action": "confirm_receipt"}
    service.ship_order(shop.uow, order_id=order.id, carrier="SF", tracking_no="S1", lines=None, actor="staff:7")
    with pytest.raises(NotFound):
        service.confirm_receipt(shop.uow, user_id=2, order_id=order.id, now=LATER)
    done = service.confirm_receipt(shop.uow, user_id=1, order_id=order.id, now=LATER)
    assert (done.status, done.completed_at, done.history[-1].actor) == ("COMPLETED", LATER, "user:1")
    [event] = events(shop, "order-completed")
    assert event.confirmed_by == "shopper"
    assert [(line.line_id, line.line.sku_id, line.line.quantity) for line in event.lines] == [
        (order.lines[0].id, 101, 2), (order.lines[1].id, 102, 3)]
    with pytest.raises(Conflict):
        service.confirm_receipt(shop.uow, user_id=1, order_id=order.id, now=LATER)
    assert len(events(shop, "order-completed")) == 1


def test_orders_shipped_the_configured_days_ago_are_confirmed_automatically(shop: Shop) -> None:
    old, recent = paid_order(shop, (101, 1), key="a"), paid_order(shop, (102, 1), key="b")
    service.ship_order(shop.uow, order_id=old.id, carrier="SF", tracking_no="1", lines=None, actor="staff:7", now=NOW)
    service.ship_order(shop.uow, order_id=recent.id, carrier="SF", tracking_no="2", lines=None, actor="staff:7",
                       now=NOW + timedelta(days=1))
    due = NOW + timedelta(days=shop.settings.auto_confirm_days)
    assert service.auto_confirm_orders(shop.uow, shop.settings, now=due - timedelta(seconds=1)) == 0
    assert service.auto_confirm_orders(shop.uow, shop.settings, now=due) == 1
    assert (old.status, old.completed_at, old.history[-1].actor) == ("COMPLETED", due, "system:auto-confirm")
    assert recent.status == "SHIPPED"
    assert [event.confirmed_by for event in events(shop, "order-completed")] == ["auto"]
    assert service.auto_confirm_orders(shop.uow, shop.settings, now=due) == 0


def test_a_shipment_naming_a_line_twice_over_grpc_is_refused_line_repeated_and_nothing_ships(shop: Shop) -> None:
    # The gateway refuses it (ShipIn); a direct caller used to have the two quantities added up and shipped.
    order = paid_order(shop, (101, 2))
    line = order.lines[0].id or 0
    servicer = OrderServicer(lambda: shop.uow, shop.catalog, shop.stock, shop.members, shop.users, shop.settings)
    token = caller_var.set(Caller(user_id=9, roles=frozenset({"operator"}), token_id="t"))
    try:
        with pytest.raises(InvalidInput) as repeated:
            servicer.ShipOrder(order_pb2.ShipOrderRequest(id=order.id, carrier="SF", tracking_no="SF1", lines=[
                order_pb2.ShipmentLine(line_id=line, quantity=1), order_pb2.ShipmentLine(line_id=line, quantity=1)]),
                None)  # type: ignore[arg-type]
    finally:
        caller_var.reset(token)

    after = service.get_order(shop.uow, user_id=None, order_id=order.id or 0)
    assert (repeated.value.code, repeated.value.details) == ("LINE_REPEATED", {"lines": [line]})
    assert (after.status, after.shipments, events(shop, "order-shipped")) == ("PAID", [], [])
