"""The unpaid orders limit on PostgreSQL: two submits of one shopper at once with one slot left place one order."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine

from services.order import service
from services.order.db import SqlOrderUnitOfWork
from services.order.domain import Order
from services.order.ports import CatalogSku, StockLine
from services.order.service import CheckoutInput, OrderSettings
from services.order.uow import OrderSearch
from tests.fakes import FakeCatalog, FakeMembers, FakeStock, FakeUsers
from tests.fixtures.postgres import start_thread, wait_until_blocked
from tests.unit.order.conftest import NOW

pytestmark = pytest.mark.integration

BUY_ONE = CheckoutInput(sku_id=101, quantity=1, address_id=7)
LIMITED = OrderSettings(max_unpaid_orders=2)


def submit(uow: Callable[[], SqlOrderUnitOfWork], stock: FakeStock, key: str) -> Order:
    return service.submit_order(uow(), FakeMembers(), stock, FakeUsers(), LIMITED, user_id=1, request=BUY_ONE, note="",
                                idempotency_key=key, request_fingerprint=repr(BUY_ONE).encode(), now=NOW)


class PausedReservation(FakeStock):
    """Its first reservation waits, units held, until `go` is set: a submit that has passed the limit's check and
    not committed yet."""

    def __init__(self, catalog: FakeCatalog, available: dict[int, int]) -> None:
        super().__init__(catalog, available)
        self.reached, self.go = threading.Event(), threading.Event()

    def reserve(self, order_no: str, lines: list[StockLine]) -> dict[int, CatalogSku]:
        held = super().reserve(order_no, lines)
        if not self.reached.is_set():
            self.reached.set()
            assert self.go.wait(30), "the test never let the first submit go on"
        return held


def test_two_submits_at_once_with_one_unpaid_slot_left_place_one_order(
        pg_uow: Callable[[], SqlOrderUnitOfWork], pg_engine: Engine) -> None:
    catalog = FakeCatalog()
    catalog.put(101, price_fen=1010)
    submit(pg_uow, FakeStock(catalog, {101: 100}), "earlier")  # 1 of 2 unpaid orders
    stock = PausedReservation(catalog, {101: 99})
    results: dict[str, Any] = {}

    first = start_thread(results, "first", lambda: submit(pg_uow, stock, "first"))
    assert stock.reached.wait(30)
    second = start_thread(results, "second", lambda: submit(pg_uow, stock, "second"))
    wait_until_blocked(pg_engine, second)  # waits for the shopper's lock (on main: it places its order meanwhile)
    stock.go.set()
    first.join()
    second.join()

    assert (isinstance(results["first"], Order), results["second"]) == (True, "TOO_MANY_UNPAID_ORDERS")
    with pg_uow() as work:
        placed, total = work.orders.search(OrderSearch(user_id=1))
        assert (total, work.orders.count_unpaid(1)) == (2, 2)
    assert (stock.available[101], list(stock.reserved)) == (98, [results["first"].order_no])
