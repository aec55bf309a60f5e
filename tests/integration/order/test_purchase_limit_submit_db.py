"""A product's purchase limit (限购) on the order database: the units counted per status, and two submits of one shopper
at once on PostgreSQL, which together would pass the limit, place one order (the shopper's lock)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine

from services.order import service
from services.order.db import SqlOrderUnitOfWork
from services.order.domain import Order, OrderLine, OrderStatus, new_order, price
from services.order.service import CheckoutInput, OrderSettings
from tests.fakes import HOME, FakeCatalog, FakeMembers, FakeStock, FakeUsers
from tests.fixtures.postgres import start_thread, wait_until_blocked
from tests.integration.order.test_unpaid_orders_limit_db import PausedReservation
from tests.unit.order.conftest import NOW

pytestmark = pytest.mark.integration

FLASH, PRODUCT, LIMIT = 201, 20, 3


def store(uow: Callable[[], SqlOrderUnitOfWork], order_no: str, status: str, *lines: tuple[int, int, int],
          user_id: int = 1) -> None:
    """An order of (product_id, quantity, refunded_quantity) lines in `status`."""
    order_lines = [OrderLine(FLASH, product_id, "限量款", "", 990, quantity) for product_id, quantity, _ in lines]
    for line, (_, _, refunded) in zip(order_lines, lines, strict=True):
        line.refunded_quantity = refunded
    order = new_order(user_id=user_id, order_no=order_no, lines=order_lines, address=HOME,
                      amounts=price(sum(line.total_fen for line in order_lines)), now=NOW, pay_minutes=30)
    order.status = status
    with uow() as work:
        work.orders.add(order)
        work.commit()


def test_units_held_count_orders_that_hold_or_took_stock_less_refunded_units(
        uow: Callable[[], SqlOrderUnitOfWork]) -> None:
    for number, status in enumerate(OrderStatus):
        store(uow, f"O{number}", status, (PRODUCT, 10, 0))
    store(uow, "RETURNED-ONE", OrderStatus.COMPLETED, (PRODUCT, 2, 1), (21, 4, 0))
    store(uow, "ANOTHER-SHOPPER", OrderStatus.PAID, (PRODUCT, 7, 0), user_id=2)

    with uow() as work:
        held = work.orders.units_held(1, [PRODUCT, 21, 22])

    # PENDING_PAYMENT, PAID, CANCEL_REQUESTED, SHIPPED, COMPLETED: 5 x 10, and 2 - 1 returned
    assert held == {PRODUCT: 51, 21: 4}


def submit(uow: Callable[[], SqlOrderUnitOfWork], stock: FakeStock, key: str) -> Order:
    request = CheckoutInput(sku_id=FLASH, quantity=2, address_id=7)
    return service.submit_order(uow(), FakeMembers(), stock, FakeUsers(), OrderSettings(), user_id=1, request=request,
                                note="", idempotency_key=key, request_fingerprint=repr(request).encode(), now=NOW)


def test_two_submits_at_once_that_together_pass_the_limit_place_one_order(
        pg_uow: Callable[[], SqlOrderUnitOfWork], pg_engine: Engine) -> None:
    catalog = FakeCatalog()
    catalog.put(FLASH, product_id=PRODUCT, price_fen=990, max_per_shopper=LIMIT)
    stock = PausedReservation(catalog, {FLASH: 100})
    results: dict[str, Any] = {}

    first = start_thread(results, "first", lambda: submit(pg_uow, stock, "first"))
    assert stock.reached.wait(30)  # its 2 units held, its order not committed yet
    second = start_thread(results, "second", lambda: submit(pg_uow, stock, "second"))
    wait_until_blocked(pg_engine, second)  # waits for the shopper's lock
    stock.go.set()
    first.join()
    second.join()

    assert (isinstance(results["first"], Order), results["second"]) == (True, "PURCHASE_LIMIT_EXCEEDED")
    with pg_uow() as work:
        assert work.orders.units_held(1, [PRODUCT]) == {PRODUCT: 2}
    assert (stock.available[FLASH], list(stock.reserved)) == (98, [results["first"].order_no])
