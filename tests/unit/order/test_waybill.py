"""The waybill (GetWaybill): the receiver in full and each line's units still to ship, for a PAID order only."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from mall.order.v1 import order_pb2

from services.common.auth import Caller, caller_var
from services.common.errors import Conflict, Forbidden, NotFound
from services.order import service
from services.order.grpc_api import OrderServicer
from services.order.service import CheckoutInput
from tests.unit.order.conftest import NOW, Shop, paid_order


@pytest.fixture
def waybill(shop: Shop) -> Iterator[Callable[..., order_pb2.Waybill]]:
    """waybill(order_id, role="operator"): GetWaybill through the servicer, called by staff user 7 with `role`."""
    servicer = OrderServicer(lambda: shop.uow, shop.catalog, shop.stock, shop.members, shop.users, shop.settings)
    tokens = []

    def _waybill(order_id: int, role: str = "operator") -> order_pb2.Waybill:
        tokens.append(caller_var.set(Caller(user_id=7, roles=frozenset(filter(None, [role])), token_id="t",
                                            token="x")))
        return servicer.GetWaybill(order_pb2.GetWaybillRequest(id=order_id), None)  # type: ignore[arg-type]

    yield _waybill
    for token in reversed(tokens):
        caller_var.reset(token)


def units(label: order_pb2.Waybill) -> list[tuple[int, int, int]]:
    return [(line.line_id, line.quantity, line.to_ship) for line in label.lines]


def test_a_paid_order_not_shipped_yet_has_every_unit_to_ship_and_the_receiver_in_full(shop: Shop, waybill) -> None:
    order = paid_order(shop, (101, 2), (102, 3))

    label = waybill(order.id)

    first, second = order.lines
    assert (label.order_no, units(label)) == (order.order_no, [(first.id, 2, 2), (second.id, 3, 3)])
    assert [(line.name, line.spec) for line in label.lines] == [(first.name, first.spec), (second.name, second.spec)]
    assert label.receiver == order_pb2.Address(name="张三", phone="13800138000", province="浙江省", city="杭州市",
                                               district="西湖区", detail="文三路1号")


def test_a_partly_shipped_order_lists_each_line_with_exactly_the_units_not_in_a_parcel(shop: Shop, waybill) -> None:
    order = paid_order(shop, (101, 2), (102, 3))
    first, second = (line.id for line in order.lines)
    for tracking_no, parcel in (("A1", {first: 2, second: 1}), ("A2", {second: 1})):
        service.ship_order(shop.uow, order_id=order.id, carrier="SF", tracking_no=tracking_no, lines=parcel,
                           actor="staff:7", now=NOW)

    label = waybill(order.id, role="admin")

    assert units(label) == [(first, 2, 0), (second, 3, 1)]  # a line shipped in full stays on the label, 0 to ship


def shipped(shop: Shop) -> int:
    order = paid_order(shop, (101, 1))
    service.ship_order(shop.uow, order_id=order.id, carrier="SF", tracking_no="S1", lines=None, actor="staff:7",
                       now=NOW)
    return order.id or 0


def unpaid(shop: Shop) -> int:
    item = service.add_cart_item(shop.uow, shop.catalog, user_id=1, sku_id=101, quantity=1, now=NOW).item
    return service.submit_order(shop.uow, shop.members, shop.stock, shop.users, shop.settings, user_id=1,
                                request=CheckoutInput(cart_item_ids=(item.id or 0,), address_id=7), note="",
                                idempotency_key="unpaid", request_fingerprint=b"unpaid", now=NOW).id or 0


@pytest.mark.parametrize(("placed", "status"), [(unpaid, "PENDING_PAYMENT"), (shipped, "SHIPPED")])
def test_an_order_not_paid_or_already_shipped_has_nothing_to_ship(shop: Shop, waybill, placed, status: str) -> None:
    order_id = placed(shop)

    with pytest.raises(Conflict) as refused:
        waybill(order_id)

    assert (refused.value.code, refused.value.message, refused.value.details) == (
        "ORDER_STATE_CONFLICT", f"a {status} order has nothing to ship", {"status": status})


@pytest.mark.parametrize("role", ["customer_service", "finance", ""])
def test_only_shippers_may_read_a_waybill(shop: Shop, waybill, role: str) -> None:
    order = paid_order(shop, (101, 1))

    with pytest.raises(Forbidden):
        waybill(order.id, role=role)


def test_an_unknown_order_has_no_waybill(shop: Shop, waybill) -> None:
    with pytest.raises(NotFound) as missing:
        waybill(404)

    assert missing.value.code == "ORDER_NOT_FOUND"
