"""On PostgreSQL, through the product consumer: an order's order-returned applied before its order-paid (other topics,
no order between them) ends where the natural order does, each event applied once, the ledger and audit clean."""

from __future__ import annotations

from datetime import timedelta

import pytest
from mall.events.v1.order_events_pb2 import OrderLine, OrderPaid, OrderReturned
from sqlalchemy import Engine, func, select

from services.common.consumer import EventConsumer
from services.common.outbox import dead_letters
from services.product import service
from services.product.consumers import HANDLERS
from services.product.domain import RESERVATION_TTL, StockLine
from tests.fakes import FakeOrders
from tests.integration.product.conftest import KAFKA, T0, Shelf, delivered
from tools.audit import check_stock

pytestmark = pytest.mark.integration

AFTER_TTL = T0 + RESERVATION_TTL + timedelta(minutes=1)


@pytest.fixture
def phone(shelf: Shelf) -> tuple[int, int]:
    """(product_id, sku_id) of a phone on sale with 100 units, 3 of them reserved for order O1 at T0."""
    product_id = shelf.product("手机", stock=100)
    [sku_id] = shelf.sku_ids(product_id)
    service.reserve_stock(shelf.uow(), order_no="O1", lines=[StockLine(sku_id, 3)], now=T0)
    return product_id, sku_id


def counts(shelf: Shelf, product_id: int) -> tuple[int, int, int]:
    """The SKU's stock and sales and the product's sales, as stored."""
    product = service.get_admin_product(shelf.uow(), product_id=product_id).product
    return product.skus[0].stock, product.skus[0].sales, product.sales


def audited(engine: Engine) -> tuple[int, int, list[str]]:
    """Dead letters, and what `make audit`'s stock check says: SKUs checked, mismatches."""
    with engine.connect() as db:
        dead = db.execute(select(func.count()).select_from(dead_letters)).scalar_one()
    audit = check_stock(engine, T0)
    return dead, audit.checked, audit.mismatches


def test_an_order_returned_consumed_before_its_order_paid_restocks_the_returned_units(
        shelf: Shelf, pg_engine: Engine, phone: tuple[int, int]) -> None:
    product_id, sku_id = phone
    consumer = EventConsumer("product", shelf.uow, KAFKA, HANDLERS)
    returned = delivered(OrderReturned(order_no="O1", case_no="AS1", lines=[OrderLine(sku_id=sku_id, quantity=2)]),
                         "order-returned", "O1")
    paid = delivered(OrderPaid(order_no="O1"), "order-paid", "O1")

    applied = [consumer.handle(record) for record in (returned, returned, paid, paid)]  # each delivered twice
    after_both = counts(shelf, product_id)
    republished = delivered(OrderReturned(order_no="O1", case_no="AS1", lines=[OrderLine(sku_id=sku_id, quantity=2)]),
                            "order-returned", "O1")  # the same case under a new event id: applied, changes nothing
    applied.append(consumer.handle(republished))

    assert applied == [True, False, True, False, True]  # the redeliveries are duplicates
    assert (after_both, counts(shelf, product_id)) == ((99, 1, 1), (99, 1, 1))  # 100 - 3 sold + 2 back; 3 - 2 sold
    assert audited(pg_engine) == (0, 1, [])


def test_an_early_return_of_an_expired_reservation_is_restocked_once_by_the_late_order_paid(
        shelf: Shelf, pg_engine: Engine, phone: tuple[int, int]) -> None:
    product_id, sku_id = phone
    service.release_expired_reservations(shelf.uow, FakeOrders(), now=AFTER_TTL)  # O1 unknown yet: 3 back on sale
    consumer = EventConsumer("product", shelf.uow, KAFKA, HANDLERS)
    consumer.handle(delivered(OrderReturned(order_no="O1", case_no="AS1", lines=[OrderLine(sku_id=sku_id, quantity=2)]),
                              "order-returned", "O1"))
    after_return = counts(shelf, product_id)

    consumer.handle(delivered(OrderPaid(order_no="O1"), "order-paid", "O1"))  # late_sale 3, then the 2 come back

    assert (after_return, counts(shelf, product_id)) == ((100, 0, 0), (99, 1, 1))
    assert audited(pg_engine) == (0, 1, [])
