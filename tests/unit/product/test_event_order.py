"""The product consumer's events of one order travel on different topics (order-paid, order-cancelled,
order-returned): whatever order they are applied in, the stock and sales end where the natural order leaves them,
each event counted once, and the stock ledger balances."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from google.protobuf.message import Message
from mall.events.v1.envelope_pb2 import EventEnvelope
from mall.events.v1.order_events_pb2 import OrderCancelled, OrderLine, OrderPaid, OrderReturned

from services.common.events import InvalidEvent
from services.product import consumers, service
from services.product.domain import RESERVATION_TTL, StockLine
from tests.fakes import FakeOrders
from tests.product_fakes import FakeProductUnitOfWork
from tests.unit.product.shelf import T0, counts, shop, sku_reserved_for_o1

AFTER_TTL = T0 + RESERVATION_TTL + timedelta(minutes=1)


@pytest.fixture
def uow() -> FakeProductUnitOfWork:
    return shop()


@pytest.fixture
def sku(uow: FakeProductUnitOfWork) -> int:
    """One SKU on sale with 100 units, 3 of them reserved for order O1 at T0."""
    return sku_reserved_for_o1(uow, stock=100)


def consume(uow: FakeProductUnitOfWork, event: Message) -> None:
    """Apply one event as the consumer does; one it dead-letters (InvalidEvent) changes nothing."""
    with uow:
        try:
            consumers.HANDLERS[type(event)](uow, event, EventEnvelope(event_id="e"))  # type: ignore[index]
        except InvalidEvent:
            return
        uow.commit()


def returned(sku_id: int, units: int, case_no: str = "AS1") -> OrderReturned:
    return OrderReturned(order_no="O1", case_no=case_no, lines=[OrderLine(sku_id=sku_id, quantity=units)])


@pytest.mark.parametrize("return_first", [False, True])
def test_a_return_applied_before_its_order_paid_ends_as_in_the_natural_order(
        uow: FakeProductUnitOfWork, sku: int, return_first: bool) -> None:
    events = [OrderPaid(order_no="O1"), returned(sku, 2)]
    for event in reversed(events) if return_first else events:
        consume(uow, event)

    assert counts(uow, sku) == (99, 1, 1, ["CONFIRMED"])  # 100 - 3 sold + 2 back; 3 sales - 2 returned
    assert service.check_stock_ledger(uow) == (1, [])


def test_an_early_return_puts_nothing_on_sale_before_the_payment_sells_its_units(
        uow: FakeProductUnitOfWork, sku: int) -> None:
    consume(uow, returned(sku, 2))

    assert counts(uow, sku) == (97, 0, 0, ["RESERVED"])  # the 3 units are still held, not sold: nothing came back
    assert service.check_stock_ledger(uow) == (1, [])


def test_an_early_return_and_its_order_paid_each_count_once_when_published_again(
        uow: FakeProductUnitOfWork, sku: int) -> None:
    for event in (returned(sku, 2), returned(sku, 2), OrderPaid(order_no="O1"), OrderPaid(order_no="O1"),
                  returned(sku, 2)):
        consume(uow, event)  # consume() gives every event the same id: the consumer's dedup is not what stops it

    assert counts(uow, sku) == (99, 1, 1, ["CONFIRMED"])
    assert service.check_stock_ledger(uow) == (1, [])


def test_early_returns_of_several_cases_restock_at_most_what_the_order_bought(
        uow: FakeProductUnitOfWork, sku: int) -> None:
    consume(uow, returned(sku, 2, "AS1"))
    consume(uow, returned(sku, 2, "AS2"))  # one more unit only: the order bought 3

    consume(uow, OrderPaid(order_no="O1"))

    assert counts(uow, sku) == (100, 0, 0, ["CONFIRMED"])
    assert service.check_stock_ledger(uow) == (1, [])


def test_the_sweep_confirming_a_paid_order_restocks_its_early_return(
        uow: FakeProductUnitOfWork, sku: int) -> None:
    orders = FakeOrders()
    orders.place("O1", "COMPLETED", paid=True)
    consume(uow, returned(sku, 2))

    service.release_expired_reservations(lambda: uow, orders, now=AFTER_TTL)
    consume(uow, OrderPaid(order_no="O1"))  # the late event changes nothing more

    assert counts(uow, sku) == (99, 1, 1, ["CONFIRMED"])
    assert service.check_stock_ledger(uow) == (1, [])


def test_an_early_return_of_an_expired_reservation_is_restocked_once_by_the_late_order_paid(
        uow: FakeProductUnitOfWork, sku: int) -> None:
    service.release_expired_reservations(lambda: uow, FakeOrders(), now=AFTER_TTL)  # O1 unknown yet: 3 back on sale
    consume(uow, returned(sku, 2))
    after_return = counts(uow, sku)

    consume(uow, OrderPaid(order_no="O1"))  # late_sale takes the 3 again, then the 2 returned come back

    assert (after_return, counts(uow, sku)) == ((100, 0, 0, ["EXPIRED"]), (99, 1, 1, ["CONFIRMED"]))
    assert service.check_stock_ledger(uow) == (1, [])


def test_an_early_return_of_an_expired_reservation_sold_since_restocks_nothing(
        uow: FakeProductUnitOfWork, sku: int) -> None:
    service.release_expired_reservations(lambda: uow, FakeOrders(), now=AFTER_TTL)
    service.reserve_stock(uow, order_no="O2", lines=[StockLine(sku, 99)], now=AFTER_TTL)
    consume(uow, returned(sku, 2))

    consume(uow, OrderPaid(order_no="O1"))  # oversold: O1 never sold from the stock, so nothing of it comes back

    assert counts(uow, sku) == (1, 0, 0, ["EXPIRED"])
    assert service.check_stock_ledger(uow) == (1, [])


EVENTS = {"paid": OrderPaid(order_no="O1"), "cancelled": OrderCancelled(order_no="O1", was_paid=True)}


@pytest.mark.parametrize("order", list(itertools.permutations(["paid", "return", "cancelled"])))
def test_a_paid_cancellation_a_return_and_the_payment_in_any_order_give_every_unit_back_once(
        uow: FakeProductUnitOfWork, sku: int, order: tuple[str, ...]) -> None:
    """Paid, 2 units cancelled by staff as never shipped (order-returned, RF1), then the rest cancelled (paid
    cancellation): whatever order the three topics deliver them in, all 3 units are back and none is sold."""
    for name in order:
        consume(uow, returned(sku, 2, "RF1") if name == "return" else EVENTS[name])

    assert counts(uow, sku)[:3] == (100, 0, 0)
    assert service.check_stock_ledger(uow) == (1, [])
