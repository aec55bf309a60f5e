"""The product consumer's order-paid events and a shopper's checkout on the same SKUs, on PostgreSQL: each event
commits before the next is applied, so a checkout never waits for (or deadlocks with) the rest of a poll."""

from __future__ import annotations

import threading

import pytest
from mall.events.v1.envelope_pb2 import EventEnvelope
from mall.events.v1.order_events_pb2 import OrderPaid
from sqlalchemy import Engine, select

from services.common.config import KafkaSettings
from services.common.consumer import EventConsumer
from services.common.events import encode, new_envelope
from services.product import consumers, service
from services.product.db import reservations
from services.product.domain import StockLine
from services.product.uow import ProductUnitOfWork
from tests.fixtures.kafka import Delivered, ScriptedConsumer, batch
from tests.fixtures.postgres import wait_until_blocked
from tests.integration.product.conftest import Shelf, UowFactory

pytestmark = pytest.mark.integration

SETTINGS = KafkaSettings(bootstrap_servers="unused:9092", max_poll_interval_ms=60_000, topic_prefix="",
                         request_timeout_ms=1000)


def order_paid(order_no: str, offset: int) -> Delivered:
    envelope = new_envelope(OrderPaid(order_no=order_no, user_id=1, paid_fen=10_000), producer="order",
                            aggregate_id=order_no)
    return Delivered(SETTINGS.topic("order-paid"), 0, offset, encode(envelope))


def test_a_checkout_of_two_skus_is_not_held_up_by_a_poll_confirming_them_in_the_other_order(
        pg_uow: UowFactory, pg_engine: Engine) -> None:
    shelf = Shelf(pg_uow)
    phone, kettle = shelf.product("手机"), shelf.product("电水壶")
    a, b = shelf.sku_ids(phone)[0], shelf.sku_ids(kettle)[0]
    assert a < b  # the checkout below locks a, then b
    service.reserve_stock(pg_uow(), order_no="X", lines=[StockLine(b, 1)])
    service.reserve_stock(pg_uow(), order_no="Y", lines=[StockLine(a, 1)])
    checkout_errors: list[BaseException] = []

    def checkout() -> None:
        try:
            service.reserve_stock(pg_uow(), order_no="Z", lines=[StockLine(a, 2), StockLine(b, 3)])
        except BaseException as exc:  # noqa: BLE001 - reported below
            checkout_errors.append(exc)

    shopper = threading.Thread(target=checkout)
    checkout_waited: list[bool] = []

    def on_order_paid(uow: ProductUnitOfWork, event: OrderPaid, envelope: EventEnvelope) -> None:
        if event.order_no == "Y":  # X (SKU b) applied; the shopper checks out a and b before Y (SKU a) goes on
            shopper.start()
            wait_until_blocked(pg_engine, shopper)  # returns when the checkout ended, or waits on a row lock
            checkout_waited.append(shopper.is_alive())
        consumers.on_order_paid(uow, event, envelope)

    scripted = ScriptedConsumer([batch(order_paid("X", 0), order_paid("Y", 1))])
    consumer = EventConsumer("product", pg_uow, SETTINGS, {OrderPaid: on_order_paid},
                             consumer_factory=lambda *_: scripted)  # type: ignore[arg-type,return-value]

    assert consumer.poll_once() == 2
    shopper.join(timeout=60)

    assert (checkout_waited, checkout_errors) == ([False], [])
    assert scripted.commits == [(0, 2)]
    with pg_engine.connect() as conn:
        held = conn.execute(select(reservations.c.order_no, reservations.c.sku_id, reservations.c.quantity,
                                   reservations.c.status).order_by(reservations.c.order_no, reservations.c.sku_id)).all()
    assert [tuple(row) for row in held] == [("X", b, 1, "CONFIRMED"), ("Y", a, 1, "CONFIRMED"),
                                            ("Z", a, 2, "RESERVED"), ("Z", b, 3, "RESERVED")]
    assert (shelf.stock(phone), shelf.stock(kettle)) == ([47], [46])
    assert [service.get_admin_product(pg_uow(), product_id=p).product.sales for p in (phone, kettle)] == [1, 1]
